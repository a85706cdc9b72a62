import BoxofficeCore
import BoxofficeStore

// How a worker treats an event whose batches keep failing: the quarantine ladder (shrink its claims,
// then set a lone intent aside) and the deferral (pick it after every other event with work).

extension AllocationWorker {
    /// An event whose claims failed in a way the claim itself may cause: its claims are shrunk until a
    /// claim settles past every intent the first failing claim had claimed.
    struct Strain {
        var claimSizeMax: Int
        var failuresAtSize = 0
        /// The largest intent id claimed by a failing claim: the culprit is at or below it.
        var suspectIntentIDMax: Int64
        let since: ContinuousClock.Instant
    }

    /// Counts a failure the claim may have caused: after ``Configuration/failuresPerClaimSize`` in a
    /// row, halves the event's claims; at a claim of one intent, quarantines it (its own transaction),
    /// so the event's other intents are decided instead of the same claim failing forever. After a
    /// quarantine the event's claims are full size again. Returns true when it quarantined an intent.
    func strain(_ failure: BatchFailure, in strains: inout [EventID: Strain]) async -> Bool {
        let claimedMax = failure.suspectIntentIDs.max() ?? 0
        var strain =
            strains[failure.eventID]
            ?? Strain(claimSizeMax: min(configuration.batchSizeMax, failure.suspectIntentIDs.count), suspectIntentIDMax: claimedMax, since: .now)
        strain.suspectIntentIDMax = max(strain.suspectIntentIDMax, claimedMax)
        strain.failuresAtSize += 1
        let error = describeDatabaseError(failure.underlying)
        logger.warning(
            "batch failed and was rolled back; it may be the batch's own doing, so its claims will shrink if it fails again",
            metadata: [
                "event": "\(failure.eventID)", "intents": "\(failure.suspectIntentIDs.count)", "failures_at_size": "\(strain.failuresAtSize)",
                "error": "\(error)",
            ])
        if strain.failuresAtSize >= configuration.failuresPerClaimSize {
            strain.failuresAtSize = 0
            if strain.claimSizeMax > 1 {
                strain.claimSizeMax = max(1, min(strain.claimSizeMax, failure.suspectIntentIDs.count) / 2)
                logger.warning(
                    "halving the event's claims after repeated failures",
                    metadata: [
                        "event": "\(failure.eventID)", "claim_size_max": "\(strain.claimSizeMax)",
                    ])
            } else if failure.isStatementTimeout, ContinuousClock.now - strain.since < configuration.timeoutQuarantineAfter {
                logger.warning(
                    "a lone intent keeps timing out; waiting to see the stall last before quarantining it",
                    metadata: [
                        "event": "\(failure.eventID)", "failing_for": "\(ContinuousClock.now - strain.since)",
                        "quarantine_after": "\(configuration.timeoutQuarantineAfter)",
                    ])
            } else if failure.suspectIntentIDs.count == 1, let intentID = failure.suspectIntentIDs.first {
                do {
                    if try await store.quarantine(intentID: intentID, eventID: failure.eventID, error: error) {
                        // The culprit is out: full claims again (another culprit in the claim starts its own ladder).
                        strains[failure.eventID] = nil
                        totalsState.withLock { $0.quarantined += 1 }
                        logger.error(
                            "quarantined an intent that fails even alone: rejected as quarantined, its error kept in the quarantine table",
                            metadata: [
                                "event": "\(failure.eventID)", "intent_id": "\(intentID)", "error": "\(error)",
                            ])
                        return true
                    }
                } catch {
                    logger.warning(
                        "could not quarantine the intent; will try again",
                        metadata: [
                            "event": "\(failure.eventID)", "intent_id": "\(intentID)", "error": "\(describeDatabaseError(error))",
                        ])
                }
            }
        }
        strains[failure.eventID] = strain
        if strains.count > configuration.strainedEventsMax,
            let oldest = strains.min(by: { $0.value.since < $1.value.since })?.key
        {
            strains[oldest] = nil
        }
        return false
    }
}

/// Events a worker picks only when no other event has work, for now (``AllocationWorker/Configuration/eventDeferMin``):
/// each deferral lasts `minimum`, doubling per failure up to `maximum`; an event that settles a batch,
/// or has not failed for as long again as its last deferral, starts over. At most `eventsMax` events are
/// remembered (the one whose deferral ends soonest is forgotten first).
struct DeferredEvents {
    let minimum: Duration
    let maximum: Duration
    let eventsMax: Int
    private var byEvent: [EventID: (until: ContinuousClock.Instant, span: Duration)] = [:]

    init(minimum: Duration, maximum: Duration, eventsMax: Int) {
        self.minimum = minimum
        self.maximum = maximum
        self.eventsMax = eventsMax
    }

    /// The events deferred at `instant`: the pick's `deferring`.
    func events(at instant: ContinuousClock.Instant) -> [EventID] {
        byEvent.filter { $0.value.until > instant }.map(\.key)
    }

    /// Defers `eventID` after a failure, doubling its last deferral when `doubling`; returns how long.
    @discardableResult
    mutating func `defer`(_ eventID: EventID, doubling: Bool, now: ContinuousClock.Instant = .now) -> Duration {
        let last = byEvent[eventID].flatMap { now < $0.until + $0.span ? $0.span : nil }
        let span = min(doubling ? last.map { $0 * 2 } ?? minimum : last ?? minimum, maximum)
        byEvent[eventID] = (now + span, span)
        if byEvent.count > eventsMax, let soonest = byEvent.min(by: { $0.value.until < $1.value.until })?.key {
            byEvent[soonest] = nil
        }
        return span
    }

    /// The event settled a batch: no longer deferred. True when it was.
    mutating func settled(_ eventID: EventID) -> Bool {
        byEvent.removeValue(forKey: eventID) != nil
    }
}
