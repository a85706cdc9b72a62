import Testing

@testable import BoxofficeCore

// Long on purpose: one property per rule of the allocator (general admission, sections, exact seats,
// mixed batches), each with its generator and its judge; they share PropertySupport.swift.

/// Property tests: every case is a random but seeded inventory and batch, judged against `SeatGrid`, a model
/// kept apart from `Inventory`'s own bookkeeping. See PropertySupport.swift for replaying a seed.
@Suite("Allocator properties")
struct AllocatorPropertyTests {
    // MARK: 1. General admission

    @Test("General admission: never oversells, accounts exactly, refuses only what does not fit, soldOut only at zero")
    func generalAdmission() {
        Property.forAll(salt: 1) { c in
            let scenario = GeneralAdmissionScenario.random(&c.rng)
            var inventory = Inventory(generalAdmission: scenario.capacity, available: scenario.available)
            let outcomes = Allocator.allocate(scenario.batch, from: &inventory)
            c.expect(outcomes.count == scenario.batch.count, "\(outcomes.count) outcomes for \(scenario.batch.count) intents; \(scenario)")

            var left = scenario.available
            var confirmed = 0
            for (i, (intent, outcome)) in zip(scenario.batch, outcomes).enumerated() {
                let asked = intent.request.quantity
                switch outcome {
                case .confirmed(let quantity, let seats):
                    c.expect(quantity == asked, "#\(i) asked \(asked), confirmed \(quantity); \(scenario)")
                    c.expect(seats.isEmpty, "#\(i) general admission confirmed with seats \(seats); \(scenario)")
                    c.expect(quantity <= left, "#\(i) confirmed \(quantity) with only \(left) left; \(scenario)")
                    left -= quantity
                    confirmed += quantity
                case .rejected(let reason):
                    c.expect(asked > left, "#\(i) asked \(asked) with \(left) left, yet refused \(reason); \(scenario)")
                    let expected: RejectionReason = left == 0 ? .soldOut : .notEnoughAvailable
                    c.expect(reason == expected, "#\(i) asked \(asked) with \(left) left: refused \(reason), expected \(expected); \(scenario)")
                }
            }
            c.expect(confirmed <= scenario.available, "confirmed \(confirmed) of \(scenario.available); \(scenario)")
            c.expect(
                inventory.available == scenario.available - confirmed,
                "available \(inventory.available) after confirming \(confirmed) of \(scenario.available); \(scenario)"
            )
            c.expect(inventory.rows.isEmpty && inventory.changedRowIndexes.isEmpty, "general admission touched seat rows; \(scenario)")
        }
    }

    // MARK: 2. Seat maps: safety and accounting

    @Test(
        "Seat map: no seat sold twice or while taken; each confirmation is exactly what was asked; available and changedRows account for exactly the seats sold"
    )
    func seatMapSafetyAndAccounting() {
        Property.forAll(salt: 2) { c in
            let scenario = SeatMapScenario.random(&c.rng)
            let run = SeatMapRun(scenario, rng: &c.rng)
            c.expect(run.outcomes.count == scenario.batch.count, "\(run.outcomes.count) outcomes for \(scenario.batch.count) intents\n\(scenario)")

            var soldTo: [SeatLabel: Int] = [:]
            for step in run.steps {
                guard case .confirmed(let quantity, let seats) = step.outcome else { continue }
                let what = "#\(step.index) \(step.request) -> \(seats)"
                let asked = step.request.quantity
                c.expect(
                    quantity == asked && seats.count == asked,
                    "\(what): confirmed quantity \(quantity), \(seats.count) seats, asked \(asked)\n\(scenario)")
                for seat in seats {
                    c.expect(scenario.initial.exists(seat), "\(what): \(seat) is not in the layout\n\(scenario)")
                    c.expect(
                        !scenario.initial.exists(seat) || scenario.initial.isFree(seat), "\(what): \(seat) was taken before the batch\n\(scenario)")
                    if let earlier = soldTo[seat] {
                        c.expect(false, "\(what): \(seat) already sold to #\(earlier)\n\(scenario)")
                    } else {
                        soldTo[seat] = step.index
                    }
                }
                switch step.request {
                case .anywhere:
                    break
                case .inSection(let name, _):
                    c.expect(seats.allSatisfy { $0.section == name }, "\(what): seats outside section \(name)\n\(scenario)")
                case .seats(let labels):
                    c.expect(seats.sorted() == labels.sorted(), "\(what): not the seats asked for\n\(scenario)")
                }
            }

            // Accounting, all recomputed from the model and from the raw taken bits.
            let initialFree = scenario.initial.freeCount
            let sold = run.outcomes.reduce(0) { $0 + $1.seats.count }
            c.expect(
                run.initialAvailable == initialFree,
                "inventory loaded with \(run.initialAvailable) available, model has \(initialFree) free\n\(scenario)")
            c.expect(sold <= initialFree, "sold \(sold) of \(initialFree) free\n\(scenario)")
            c.expect(
                run.inventory.available == initialFree - sold,
                "available \(run.inventory.available) after selling \(sold) of \(initialFree)\n\(scenario)")
            let freeBits = run.inventory.rows.reduce(0) { $0 + $1.taken.lazy.filter { !$0 }.count }
            c.expect(run.inventory.available == freeBits, "available \(run.inventory.available) but rows hold \(freeBits) free seats\n\(scenario)")

            // Rows: the same rows as loaded; bits only ever go from free to taken, exactly at the seats sold.
            let keysAfter = run.inventory.rows.map { RowKey($0) }
            c.expect(keysAfter == run.loadedRows.map { RowKey($0) }, "the inventory's rows changed: \(keysAfter)\n\(scenario)")
            let bitsBefore = Dictionary(uniqueKeysWithValues: run.loadedRows.map { (RowKey($0), $0.taken) })
            var newlyTaken: Set<SeatLabel> = []
            var freed: [SeatLabel] = []
            var differing: Set<RowKey> = []
            for row in run.inventory.rows {
                guard let old = bitsBefore[RowKey(row)], old.count == row.taken.count else {
                    c.expect(false, "row \(RowKey(row)) is new or changed width\n\(scenario)")
                    continue
                }
                for seat in old.indices where old[seat] != row.taken[seat] {
                    let label = scenario.initial.label(section: row.sectionIndex, row: row.row, seat: seat + 1)
                    if row.taken[seat] { newlyTaken.insert(label) } else { freed.append(label) }
                    differing.insert(RowKey(row))
                }
            }
            c.expect(freed.isEmpty, "seats freed by a batch: \(freed)\n\(scenario)")
            c.expect(newlyTaken == Set(soldTo.keys), "newly taken \(newlyTaken.sorted()) but confirmed \(soldTo.keys.sorted())\n\(scenario)")
            let changed = run.inventory.changedRows.map { RowKey($0) }
            c.expect(Set(changed) == differing, "changedRows \(changed.sorted()) but rows with new seats \(differing.sorted())\n\(scenario)")
            c.expect(
                changed == changed.sorted() && Set(changed).count == changed.count,
                "changedRows not in stable order or repeated: \(changed)\n\(scenario)")
            for row in run.inventory.changedRows {
                let free = row.taken.lazy.filter { !$0 }.count
                c.expect(row.free == free, "changed row \(RowKey(row)) says \(row.free) free, holds \(free)\n\(scenario)")
            }
            let grid = SeatGrid(sections: scenario.sections, loadedRows: run.inventory.rows)
            c.expect(grid == run.modelAfter, "inventory after the batch:\n\(grid)\nmodel:\n\(run.modelAfter)\n\(scenario)")
        }
    }

    @Test("Seat map: a request is refused only when it cannot be met, and the reason says why (soldOut, notEnoughAvailable, seatsUnavailable)")
    func seatMapRefusalsAndReasons() {
        var refusals: [RejectionReason: Int] = [:]
        Property.forAll(salt: 3) { c in
            let scenario = SeatMapScenario.random(&c.rng)
            let run = SeatMapRun(scenario, rng: &c.rng)
            for step in run.steps {
                let expected: RejectionReason?
                switch step.request {
                case .anywhere(let quantity):
                    expected = bestAvailableRefusal(quantity: quantity, free: step.before.freeCount)
                case .inSection(let name, let quantity):
                    let scope = step.before.sectionIndex(named: name).map { [$0] } ?? []
                    expected = bestAvailableRefusal(quantity: quantity, free: step.before.freeCount(inSections: scope))
                case .seats(let labels):
                    let possible = labels.allSatisfy(step.before.isFree) && Set(labels).count == labels.count
                    expected = possible ? nil : .seatsUnavailable
                }
                if let reason = step.outcome.rejection { refusals[reason, default: 0] += 1 }
                c.expect(
                    step.outcome.rejection == expected,
                    "#\(step.index) \(step.request) -> \(step.outcome), expected \(expected.map { "refusal \($0)" } ?? "confirmation")\nseats before it:\n\(step.before)\n\(scenario)"
                )
            }
        }
        if Property.replaySeed == nil {
            for reason in RejectionReason.allocatorReasons {
                #expect(refusals[reason, default: 0] >= 50, "generator produced only \(refusals[reason, default: 0]) \(reason) refusals")
            }
        }
    }

    // MARK: 3. Arrival order

    @Test("Arrival order: once a request is refused, the identical request later in the same batch is refused too")
    func arrivalOrder() {
        var exercised = 0
        Property.forAll(salt: 4) { c in
            let batch: [PendingIntent]
            let outcomes: [Outcome]
            let context: String
            if c.rng.chance(30) {
                let scenario = GeneralAdmissionScenario.random(&c.rng, repeatPercent: 40)
                var inventory = Inventory(generalAdmission: scenario.capacity, available: scenario.available)
                batch = scenario.batch
                outcomes = Allocator.allocate(batch, from: &inventory)
                context = scenario.description
            } else {
                let scenario = SeatMapScenario.random(&c.rng, repeatPercent: 40, maxIntents: 40)
                let run = SeatMapRun(scenario, rng: &c.rng)
                batch = scenario.batch
                outcomes = run.outcomes
                context = scenario.description
            }
            c.expect(outcomes.count == batch.count, "\(outcomes.count) outcomes for \(batch.count) intents\n\(context)")
            for i in outcomes.indices where !outcomes[i].isConfirmed {
                for j in (i + 1)..<outcomes.count where batch[j].request == batch[i].request {
                    exercised += 1
                    c.expect(
                        !outcomes[j].isConfirmed,
                        "#\(i) \(batch[i].request) was refused (\(outcomes[i])) but the same request #\(j) got \(outcomes[j])\n\(context)"
                    )
                }
            }
        }
        if Property.replaySeed == nil {
            #expect(exercised >= 100, "generator produced only \(exercised) refused-then-repeated pairs")
        }
    }

    // MARK: 4. Adjacency

    @Test(
        "Adjacency: when a row in scope has enough adjacent free seats, the party sits together in the front-most such row (first section first), nearest the row's centre"
    )
    func adjacency() {
        var together = 0
        Property.forAll(salt: 5) { c in
            let scenario = SeatMapScenario.random(&c.rng, mix: .bestAvailableOnly)
            let run = SeatMapRun(scenario, rng: &c.rng)
            for step in run.steps where step.outcome.isConfirmed {
                guard let (quantity, scope) = bestAvailableScope(step.request, in: step.before),
                    let target = step.before.firstRowWithBlock(length: quantity, inSections: scope)
                else { continue }
                together += 1
                let seats = step.outcome.seats
                let section = scenario.sections[target.section]
                let what = "#\(step.index) \(step.request) -> \(seats)"
                let picture = "seats before it:\n\(step.before)\n\(scenario)"
                let inTargetRow = seats.allSatisfy { $0.section == section.name && $0.row == target.row }
                c.expect(
                    inTargetRow,
                    "\(what): expected \(section.name) row \(target.row), the front-most row with \(quantity) adjacent free seats\n\(picture)")
                let numbers = seats.map(\.seat).sorted()
                let consecutive = numbers.count == quantity && numbers == Array(numbers[0]..<(numbers[0] + quantity))
                c.expect(consecutive, "\(what): seats not adjacent\n\(picture)")
                guard inTargetRow, consecutive else { continue }
                // Doubled distance from the block's middle to the row's middle, over every free block of that row.
                let width = section.seatsPerRow
                func distance(_ start: Int) -> Int { abs(2 * start + quantity - 1 - (width - 1)) }
                let nearest = step.before.freeBlockStarts(length: quantity, section: target.section, row: target.row).map(distance).min()!
                c.expect(
                    distance(numbers[0] - 1) == nearest,
                    "\(what): block is \(distance(numbers[0] - 1))/2 seats off centre, a free block \(nearest)/2 off exists\n\(picture)"
                )
            }
        }
        if Property.replaySeed == nil {
            #expect(together >= 500, "generator produced only \(together) decisions with an adjacent block available")
        }
    }

    @Test("No adjacent block anywhere in scope: the front-most free seats, kept within the first section that has enough")
    func scatteredFallback() {
        var scattered = 0
        var acrossSections = 0
        Property.forAll(salt: 6) { c in
            let scenario = SeatMapScenario.random(&c.rng, mix: .bestAvailableOnly)
            let run = SeatMapRun(scenario, rng: &c.rng)
            for step in run.steps where step.outcome.isConfirmed {
                guard let (quantity, scope) = bestAvailableScope(step.request, in: step.before),
                    step.before.firstRowWithBlock(length: quantity, inSections: scope) == nil
                else { continue }
                scattered += 1
                let single = scope.first { step.before.freeCount(inSections: [$0]) >= quantity }
                if single == nil { acrossSections += 1 }
                let expected = Array(step.before.freeLabels(inSections: single.map { [$0] } ?? scope).prefix(quantity))
                c.expect(
                    step.outcome.seats.sorted() == expected.sorted(),
                    "#\(step.index) \(step.request) -> \(step.outcome.seats), expected front-most \(expected)\nseats before it:\n\(step.before)\n\(scenario)"
                )
            }
        }
        if Property.replaySeed == nil {
            #expect(scattered >= 50, "generator produced only \(scattered) decisions without an adjacent block")
            #expect(acrossSections >= 5, "generator produced only \(acrossSections) decisions spanning sections")
        }
    }

    // MARK: 5. Exact seats

    @Test(
        "Exact seats are all or nothing: a taken, sold-out-row, unknown or repeated seat refuses the whole request as seatsUnavailable and changes nothing"
    )
    func exactSeatsAllOrNothing() {
        var refused = 0
        var inAbsentRows = 0
        Property.forAll(salt: 7) { c in
            let scenario = SeatMapScenario.random(&c.rng, mix: .mostlyExactSeats)
            let loadedKeys = Set(scenario.initial.loadedRows().map { RowKey($0) })
            var inventory = scenario.initial.makeInventory()
            var model = scenario.initial
            for (i, intent) in scenario.batch.enumerated() {
                // One intent at a time, so each refusal can be shown to leave the inventory exactly as it was.
                let snapshot = InventorySnapshot(inventory)
                let outcomes = Allocator.allocate([intent], from: &inventory)
                guard outcomes.count == 1 else {
                    c.expect(false, "#\(i) \(intent.request): \(outcomes.count) outcomes for one intent")
                    return
                }
                let outcome = outcomes[0]
                if !outcome.isConfirmed {
                    c.expect(InventorySnapshot(inventory) == snapshot, "#\(i) \(intent.request) -> \(outcome) yet the inventory changed\n\(scenario)")
                }
                if case .seats(let labels) = intent.request {
                    let blocked = labels.filter { !model.isFree($0) }
                    if labels.contains(where: { label in
                        model.position(of: label).map { !loadedKeys.contains(RowKey(section: $0.section, row: $0.row + 1)) } ?? false
                    }) {
                        inAbsentRows += 1
                    }
                    if blocked.isEmpty {
                        c.expect(
                            outcome.confirmedQuantity == labels.count && outcome.seats.sorted() == labels.sorted(),
                            "#\(i) \(intent.request): all free, got \(outcome)\nseats before it:\n\(model)\n\(scenario)"
                        )
                    } else {
                        refused += 1
                        c.expect(
                            outcome == .rejected(.seatsUnavailable),
                            "#\(i) \(intent.request): \(blocked) not free, got \(outcome)\nseats before it:\n\(model)\n\(scenario)"
                        )
                    }
                }
                for seat in outcome.seats where model.isFree(seat) { model.take(seat) }
            }
            let grid = SeatGrid(sections: scenario.sections, loadedRows: inventory.rows)
            c.expect(grid == model, "inventory after the batch:\n\(grid)\nmodel:\n\(model)\n\(scenario)")
        }
        if Property.replaySeed == nil {
            #expect(refused >= 300, "generator produced only \(refused) refused exact-seat requests")
            #expect(inAbsentRows >= 30, "generator produced only \(inAbsentRows) exact-seat requests in sold-out rows")
        }
    }

    // MARK: Determinism

    @Test("A batch is decided as if its intents came one at a time, whatever order the rows were loaded in")
    func batchEqualsOneAtATime() {
        Property.forAll(salt: 8, cases: 150) { c in
            let scenario = SeatMapScenario.random(&c.rng)
            let run = SeatMapRun(scenario, rng: &c.rng)  // rows loaded shuffled
            var sequential = scenario.initial.makeInventory()  // rows loaded sorted
            let outcomes = scenario.batch.flatMap { Allocator.allocate([$0], from: &sequential) }
            c.expect(outcomes == run.outcomes, "batch \(run.outcomes) but one at a time \(outcomes)\n\(scenario)")
            c.expect(InventorySnapshot(sequential) == InventorySnapshot(run.inventory), "inventories differ after the same decisions\n\(scenario)")
        }
    }

    // MARK: 7. Unknown sections

    @Test("inSection naming a section not in the layout is refused as soldOut, never dropped or seated elsewhere")
    func unknownSectionIsSoldOut() {
        Property.forAll(salt: 9, cases: 100) { c in
            let scenario = SeatMapScenario.random(&c.rng)
            let names = Set(scenario.sections.map(\.name))
            let unknown = Generate.sectionName(&c.rng, avoiding: names)
            var inventory = scenario.initial.makeInventory()
            let snapshot = InventorySnapshot(inventory)
            let batch = intents([.inSection(unknown, quantity: Generate.quantity(&c.rng))])
            let outcomes = Allocator.allocate(batch, from: &inventory)
            c.expect(outcomes == [.rejected(.soldOut)], "\(batch[0].request) -> \(outcomes)\n\(scenario)")
            c.expect(InventorySnapshot(inventory) == snapshot, "refusing \(batch[0].request) changed the inventory\n\(scenario)")
        }
    }
}

// MARK: - Helpers

/// Rows named independently of `Inventory`'s indexes.
struct RowKey: Hashable, Comparable, CustomStringConvertible {
    let section: Int
    let row: Int

    init(section: Int, row: Int) {
        self.section = section
        self.row = row
    }

    init(_ row: SeatRow) { self.init(section: row.sectionIndex, row: row.row) }

    static func < (lhs: RowKey, rhs: RowKey) -> Bool { (lhs.section, lhs.row) < (rhs.section, rhs.row) }

    var description: String { "s\(section)r\(row)" }
}

/// The documented refusal for a best-available request given the free seats in its scope, nil if it fits.
func bestAvailableRefusal(quantity: Int, free: Int) -> RejectionReason? {
    if free == 0 { return .soldOut }
    if quantity > free { return .notEnoughAvailable }
    return nil
}

/// Quantity and section indexes searched for a best-available request; nil for exact seats or an unknown section.
func bestAvailableScope(_ request: PurchaseRequest, in grid: SeatGrid) -> (Int, [Int])? {
    switch request {
    case .anywhere(let quantity):
        return (quantity, Array(grid.sections.indices))
    case .inSection(let name, let quantity):
        return grid.sectionIndex(named: name).map { (quantity, [$0]) }
    case .seats:
        return nil
    }
}
