-- Runs once, when the compose stack's PostgreSQL volume is first initialised
-- (/docker-entrypoint-initdb.d). On a server of your own, run the same statements once as a superuser.
--
-- Boxoffice asks for these timeouts in its connection startup packet. PgBouncer drops them
-- (ignore_startup_parameters in pgbouncer/pgbouncer.ini), so the role carries them instead:
-- a stuck statement fails after 15 s, a lock wait after 5 s, and a transaction left open and idle
-- (a frozen worker) is ended after 30 s, its batch rolled back and its intents claimed again.
ALTER ROLE boxoffice SET statement_timeout = '15s';
ALTER ROLE boxoffice SET lock_timeout = '5s';
ALTER ROLE boxoffice SET idle_in_transaction_session_timeout = '30s';
