import Testing

@testable import BoxofficeCore

/// Hand-worked cases: each pins one rule of the allocator on a seat map small enough to check by eye.
@Suite("Allocator examples")
struct AllocatorExampleTests {
    // MARK: Adjacency and centring

    @Test("Empty 1x10 row, 2 seats: the centre pair, seats 5 and 6")
    func centrePairInEvenRow() {
        var inventory = seatMap([section("A", rows: 1, seats: 10)])
        let outcome = decide(.anywhere(quantity: 2), in: &inventory)
        #expect(outcome.confirmedQuantity == 2)
        #expect(outcome.seats.sorted() == [seat("A", 1, 5), seat("A", 1, 6)])
    }

    @Test("Empty 1x10 row, 3 seats: an adjacent block within one seat of the centre (4-6 or 5-7)")
    func centredTripleInEvenRow() {
        var inventory = seatMap([section("A", rows: 1, seats: 10)])
        let outcome = decide(.anywhere(quantity: 3), in: &inventory)
        let numbers = outcome.seats.filter { $0.section == "A" && $0.row == 1 }.map(\.seat).sorted()
        #expect(outcome.confirmedQuantity == 3)
        #expect(numbers.count == 3 && numbers.last! - numbers.first! == 2, "not one adjacent block: \(outcome)")
        // Row centre is 5.5; the block's middle seat must be within one seat of it.
        #expect(numbers.count == 3 && abs(Double(numbers[1]) - 5.5) <= 1, "block \(numbers) is off centre")
        #expect([[4, 5, 6], [5, 6, 7]].contains(numbers), "block \(numbers)")
    }

    @Test("Empty 9-seat row, 1 seat: the middle seat 5")
    func middleSeatInOddRow() {
        var inventory = seatMap([section("A", rows: 1, seats: 9)])
        #expect(decide(.anywhere(quantity: 1), in: &inventory) == .confirmed(quantity: 1, seats: [seat("A", 1, 5)]))
    }

    @Test("Seats 1-4 taken in a 10-seat row, 4 seats: the block inside 5-10 nearest the centre, 5-8")
    func blockClampedIntoRun() {
        var inventory = seatMap([section("A", rows: 1, seats: 10)], taken: (1...4).map { seat("A", 1, $0) })
        let outcome = decide(.anywhere(quantity: 4), in: &inventory)
        let numbers = outcome.seats.map(\.seat).sorted()
        #expect(outcome.confirmedQuantity == 4)
        #expect(outcome.seats.allSatisfy { $0.section == "A" && $0.row == 1 && (5...10).contains($0.seat) }, "\(outcome)")
        #expect(numbers == [5, 6, 7, 8])
    }

    @Test("Of several free runs, the block nearest the row's centre wins (taken 3 and 8 of 10, 2 seats: 5-6)")
    func nearestRunToCentre() {
        var inventory = seatMap([section("A", rows: 1, seats: 10)], taken: [seat("A", 1, 3), seat("A", 1, 8)])
        let outcome = decide(.anywhere(quantity: 2), in: &inventory)
        #expect(outcome.seats.sorted() == [seat("A", 1, 5), seat("A", 1, 6)])
    }

    @Test("A front row without enough adjacent free seats is passed over for the first row that has them")
    func frontRowWithoutBlockIsSkipped() {
        // Row 1: free 1, 3, 5 (three free, no pair). Row 2: only seat 6 free. Row 3: empty.
        let taken = [2, 4, 6].map { seat("A", 1, $0) } + (1...5).map { seat("A", 2, $0) }
        var inventory = seatMap([section("A", rows: 3, seats: 6)], taken: taken)
        let outcome = decide(.anywhere(quantity: 2), in: &inventory)
        #expect(outcome.seats.sorted() == [seat("A", 3, 3), seat("A", 3, 4)])
    }

    @Test("The front-most row with a block wins over a better-centred block further back")
    func frontRowBeatsCentre() {
        var inventory = seatMap([section("A", rows: 2, seats: 10)], taken: (1...6).map { seat("A", 1, $0) })
        let outcome = decide(.anywhere(quantity: 2), in: &inventory)
        #expect(outcome.seats.sorted() == [seat("A", 1, 7), seat("A", 1, 8)])
    }

    @Test(".anywhere seats a party together in a later section rather than apart in an earlier one")
    func togetherInLaterSection() {
        var inventory = seatMap(
            [section("A", rows: 1, seats: 4), section("B", rows: 1, seats: 4)],
            taken: [seat("A", 1, 2), seat("A", 1, 4)]
        )
        let outcome = decide(.anywhere(quantity: 2), in: &inventory)
        #expect(outcome.seats.sorted() == [seat("B", 1, 2), seat("B", 1, 3)])
    }

    @Test("No row has enough adjacent seats: the front-most free seats of the first section with enough")
    func scatteredWithinOneSection() {
        // A: free 1, 3 (too few). B: free 1, 3 in both rows. C: free 1, 3, 5. No three adjacent anywhere.
        let taken = [seat("A", 1, 2), seat("B", 1, 2), seat("B", 1, 4), seat("B", 2, 2), seat("B", 2, 4), seat("C", 1, 2), seat("C", 1, 4)]
        var inventory = seatMap(
            [section("A", rows: 1, seats: 3), section("B", rows: 2, seats: 4), section("C", rows: 1, seats: 5)],
            taken: taken
        )
        let outcome = decide(.anywhere(quantity: 3), in: &inventory)
        #expect(outcome.seats.sorted() == [seat("B", 1, 1), seat("B", 1, 3), seat("B", 2, 1)])
    }

    @Test("No single section has enough: the front-most free seats across sections")
    func scatteredAcrossSections() {
        var inventory = seatMap(
            [section("A", rows: 1, seats: 3), section("B", rows: 1, seats: 3)],
            taken: [seat("A", 1, 2), seat("B", 1, 2)]
        )
        let outcome = decide(.anywhere(quantity: 3), in: &inventory)
        #expect(outcome.seats.sorted() == [seat("A", 1, 1), seat("A", 1, 3), seat("B", 1, 1)])
        #expect(inventory.available == 1)
    }

    // MARK: Sections

    @Test(".inSection keeps the party in that section even when an earlier section has better seats")
    func inSectionStaysInSection() {
        var inventory = seatMap([section("A", rows: 1, seats: 10), section("B", rows: 2, seats: 10)])
        let outcome = decide(.inSection("B", quantity: 2), in: &inventory)
        #expect(outcome.seats.sorted() == [seat("B", 1, 5), seat("B", 1, 6)])
    }

    @Test(".inSection of a sold-out section is soldOut even with seats elsewhere; asking for more than a section has is notEnoughAvailable")
    func inSectionRefusals() {
        let taken = (1...4).map { seat("B", 1, $0) }
        var inventory = seatMap([section("A", rows: 1, seats: 4), section("B", rows: 1, seats: 4)], taken: taken)
        #expect(inventory.rows.count == 1, "the sold-out row of B must be absent, as the Store loads it")
        #expect(decide(.inSection("B", quantity: 1), in: &inventory) == .rejected(.soldOut))
        #expect(decide(.inSection("A", quantity: 5), in: &inventory) == .rejected(.notEnoughAvailable))
        #expect(decide(.anywhere(quantity: 5), in: &inventory) == .rejected(.notEnoughAvailable))
        #expect(inventory.available == 4)
    }

    @Test(".inSection naming a section not in the layout is refused as soldOut (not dropped, not seated elsewhere)")
    func inSectionUnknownName() {
        var inventory = seatMap([section("A", rows: 2, seats: 4)])
        let before = InventorySnapshot(inventory)
        let outcomes = Allocator.allocate(intents([.inSection("Z", quantity: 1), .inSection("a", quantity: 1)]), from: &inventory)
        #expect(outcomes == [.rejected(.soldOut), .rejected(.soldOut)])
        #expect(InventorySnapshot(inventory) == before)
    }

    // MARK: Exact seats

    @Test("Exact seats: one already taken refuses the whole request as seatsUnavailable and changes nothing")
    func exactSeatsOneTaken() {
        var inventory = seatMap([section("A", rows: 1, seats: 10)], taken: [seat("A", 1, 5)])
        let before = InventorySnapshot(inventory)
        let outcome = decide(.seats([seat("A", 1, 4), seat("A", 1, 5), seat("A", 1, 6)]), in: &inventory)
        #expect(outcome == .rejected(.seatsUnavailable))
        #expect(InventorySnapshot(inventory) == before)
        let rest = decide(.seats([seat("A", 1, 4), seat("A", 1, 6)]), in: &inventory)
        #expect(rest.confirmedQuantity == 2 && rest.seats.sorted() == [seat("A", 1, 4), seat("A", 1, 6)])
        #expect(inventory.available == 7)
    }

    @Test("Exact seats in a sold-out row (absent from the inventory) are refused seatsUnavailable, with or without free seats alongside")
    func exactSeatsInAbsentRow() {
        var inventory = seatMap([section("A", rows: 2, seats: 3)], taken: (1...3).map { seat("A", 1, $0) })
        #expect(inventory.rows.map(\.row) == [2], "row 1 must be absent")
        let before = InventorySnapshot(inventory)
        #expect(decide(.seats([seat("A", 1, 2)]), in: &inventory) == .rejected(.seatsUnavailable))
        #expect(decide(.seats([seat("A", 2, 2), seat("A", 1, 2)]), in: &inventory) == .rejected(.seatsUnavailable))
        #expect(InventorySnapshot(inventory) == before)
    }

    @Test("Exact seats outside the layout (row, seat or section) are refused seatsUnavailable")
    func exactSeatsOutsideLayout() {
        var inventory = seatMap([section("A", rows: 2, seats: 3)])
        let before = InventorySnapshot(inventory)
        for label in [seat("A", 3, 1), seat("A", 1, 4), seat("Z", 1, 1)] {
            #expect(decide(.seats([seat("A", 1, 1), label]), in: &inventory) == .rejected(.seatsUnavailable), "\(label)")
        }
        #expect(InventorySnapshot(inventory) == before)
    }

    @Test("Exact seats naming one seat twice are refused seatsUnavailable rather than sold once")
    func exactSeatsRepeated() {
        var inventory = seatMap([section("A", rows: 1, seats: 3)])
        #expect(decide(.seats([seat("A", 1, 1), seat("A", 1, 1)]), in: &inventory) == .rejected(.seatsUnavailable))
        #expect(inventory.available == 3)
    }

    @Test("Within a batch, a seat sold to an earlier intent is unavailable to a later one")
    func laterIntentSeesEarlierSale() {
        var inventory = seatMap([section("A", rows: 1, seats: 3)])
        let outcomes = Allocator.allocate(
            intents([.seats([seat("A", 1, 2)]), .seats([seat("A", 1, 2)]), .anywhere(quantity: 2), .anywhere(quantity: 1)]),
            from: &inventory
        )
        #expect(outcomes[0] == .confirmed(quantity: 1, seats: [seat("A", 1, 2)]))
        #expect(outcomes[1] == .rejected(.seatsUnavailable))
        #expect(outcomes[2].seats.sorted() == [seat("A", 1, 1), seat("A", 1, 3)])
        #expect(outcomes[3] == .rejected(.soldOut))
    }

    // MARK: Accounting

    @Test("General admission: too many is notEnoughAvailable, an exact fit is confirmed without seats, then soldOut")
    func generalAdmissionExample() {
        var inventory = Inventory(generalAdmission: 10, available: 5)
        let outcomes = Allocator.allocate(intents([.anywhere(quantity: 6), .anywhere(quantity: 5), .anywhere(quantity: 1)]), from: &inventory)
        #expect(outcomes == [.rejected(.notEnoughAvailable), .confirmed(quantity: 5, seats: []), .rejected(.soldOut)])
        #expect(inventory.available == 0)
    }

    @Test("changedRows lists exactly the rows a batch sold from, with their new taken seats")
    func changedRowsExample() {
        var inventory = seatMap([section("A", rows: 3, seats: 4)])
        _ = Allocator.allocate(intents([.seats([seat("A", 2, 1)]), .anywhere(quantity: 2)]), from: &inventory)
        let changed = inventory.changedRows
        #expect(changed.map(\.row) == [1, 2])
        #expect(changed.map(\.taken) == [[false, true, true, false], [true, false, false, false]])
        #expect(changed.map(\.free) == [2, 3])
        #expect(inventory.available == 9)
    }
}

// MARK: - Helpers

func section(_ name: String, rows: Int, seats: Int) -> SectionLayout {
    SectionLayout(name: name, rows: rows, seatsPerRow: seats)
}

func seat(_ section: String, _ row: Int, _ seat: Int) -> SeatLabel {
    SeatLabel(section: section, row: row, seat: seat)
}

/// An inventory as the Store loads it: every seat free except `taken`, rows with no free seat left out.
func seatMap(_ sections: [SectionLayout], taken: [SeatLabel] = []) -> Inventory {
    var grid = SeatGrid(sections: sections)
    for label in taken { grid.take(label) }
    return grid.makeInventory()
}

func decide(_ request: PurchaseRequest, in inventory: inout Inventory) -> Outcome {
    Allocator.allocate([PendingIntent(id: 1, request: request)], from: &inventory)[0]
}

// MARK: - Seat labels

@Suite("SeatLabel parsing")
struct SeatLabelTests {
    @Test("SeatLabel(parsing:) reads back the description of any label with a valid section name")
    func roundTrip() {
        Property.forAll(salt: 10) { c in
            let name = Generate.sectionName(&c.rng)
            c.expect(SectionLayout.isValidName(name), "generated name \(name) is not valid")
            let bound = c.rng.chance(80) ? SectionLayout.rowsMax : 999_999
            let label = SeatLabel(section: name, row: c.rng.int(1...bound), seat: c.rng.int(1...bound))
            let parsed = SeatLabel(parsing: label.description)
            c.expect(parsed == label, "\(label.description) parsed as \(parsed.map(\.description) ?? "nil")")
            c.expect(SeatLabel(parsing: label.description[...]) == label, "\(label.description) as a Substring")
        }
    }

    @Test(
        "SeatLabel(parsing:) rejects malformed labels",
        arguments: [
            "A-0-1", "A-1-0", "A-1", "A-1-1-1", "-1-1", "A-x-1", "A-1-", "A--1-1", "A-1--1", "", "A", "--",
            "A-1-1 ", " A-1-1", "A B-1-1", "A.1-1-1", "Ä-1-1", "A-1.5-1", "A-1-9999999", "A-1-1e2",
            "ABCDEFGHIJKLMNOPQ-1-1", String(repeating: "x", count: 40) + "-1-1",
            // One spelling per seat: no sign, no leading zero.
            "A-+1-1", "A-01-1", "A-000001-1", "A-1-+5", "A-1-05",
        ])
    func rejectsMalformed(_ text: String) {
        #expect(SeatLabel(parsing: text) == nil)
    }

    @Test("Section names: 16 characters are accepted, 17 are rejected")
    func nameLengthLimit() {
        let sixteen = "ABCDEFGHIJKLMN_9"
        #expect(sixteen.count == SectionLayout.nameLengthMax)
        #expect(SeatLabel(parsing: "\(sixteen)-1-1") == SeatLabel(section: sixteen, row: 1, seat: 1))
        #expect(SeatLabel(parsing: "\(sixteen)Z-1-1") == nil)
        #expect(!SectionLayout.isValidName(sixteen + "Z"))
    }

    @Test("Labels order by section, then row, then seat (numerically)")
    func ordering() {
        let labels = ["B-1-1", "A-10-1", "A-2-10", "A-2-9"].compactMap { SeatLabel(parsing: $0) }
        #expect(labels.sorted().map(\.description) == ["A-2-9", "A-2-10", "A-10-1", "B-1-1"])
    }
}
