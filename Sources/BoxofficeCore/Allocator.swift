/// Decides every intent of a batch, in arrival order, against one event's inventory.
///
/// Pure and deterministic: the same inventory and batch give the same outcomes, so correctness is
/// argued and property-tested here, away from I/O. Inventory only ever shrinks, which is what makes
/// arrival order hold: once a request is refused, the same request later is refused too.
public enum Allocator {
    /// Returns one outcome per intent, in the order given, and leaves `inventory` holding what remains.
    public static func allocate(_ batch: [PendingIntent], from inventory: inout Inventory) -> [Outcome] {
        batch.map { decide($0.request, in: &inventory) }
    }

    static func decide(_ request: PurchaseRequest, in inventory: inout Inventory) -> Outcome {
        precondition(request.quantity >= 1, "intake admits quantities of at least 1")
        switch inventory.layout {
        case .generalAdmission:
            return decideGeneralAdmission(quantity: request.quantity, in: &inventory)
        case .seatMap:
            switch request {
            case .anywhere(let quantity):
                return decideBestAvailable(quantity: quantity, sections: Array(inventory.layout.sections.indices), in: &inventory)
            case .inSection(let name, let quantity):
                guard let sectionIndex = inventory.sectionIndex(named: name) else { return .rejected(.soldOut) }
                return decideBestAvailable(quantity: quantity, sections: [sectionIndex], in: &inventory)
            case .seats(let labels):
                return decideExactSeats(labels, in: &inventory)
            }
        }
    }

    static func decideGeneralAdmission(quantity: Int, in inventory: inout Inventory) -> Outcome {
        guard inventory.available > 0 else { return .rejected(.soldOut) }
        guard quantity <= inventory.available else { return .rejected(.notEnoughAvailable) }
        inventory.takeGeneralAdmission(quantity)
        return .confirmed(quantity: quantity, seats: [])
    }

    /// Adjacent seats in one row (front rows first, nearest the centre) in the first section that has
    /// them; otherwise the front-most free seats of one section; otherwise across sections.
    static func decideBestAvailable(quantity: Int, sections: [Int], in inventory: inout Inventory) -> Outcome {
        let freeBySection = sections.map { inventory.freeSeats(inSection: $0) }
        let freeInScope = freeBySection.reduce(0, +)
        guard freeInScope > 0 else { return .rejected(.soldOut) }
        guard quantity <= freeInScope else { return .rejected(.notEnoughAvailable) }

        for sectionIndex in sections {
            for rowIndex in inventory.rowRange(ofSection: sectionIndex) where inventory.rows[rowIndex].free >= quantity {
                if let start = bestBlock(of: quantity, in: inventory.rows[rowIndex].taken) {
                    let seats = (start..<start + quantity).map { inventory.takeSeat(rowIndex: rowIndex, seat: $0) }
                    return .confirmed(quantity: quantity, seats: seats)
                }
            }
        }
        let scope = zip(sections, freeBySection).first { $0.1 >= quantity }.map { [$0.0] } ?? sections
        var seats: [SeatLabel] = []
        seats.reserveCapacity(quantity)
        outer: for sectionIndex in scope {
            for rowIndex in inventory.rowRange(ofSection: sectionIndex) {
                for seat in inventory.rows[rowIndex].taken.indices where !inventory.rows[rowIndex].taken[seat] {
                    seats.append(inventory.takeSeat(rowIndex: rowIndex, seat: seat))
                    if seats.count == quantity { break outer }
                }
            }
        }
        assert(seats.count == quantity, "free count and rows disagree")
        return .confirmed(quantity: quantity, seats: seats)
    }

    /// The start of the run of `length` free seats whose middle is nearest the row's middle, if any.
    static func bestBlock(of length: Int, in taken: [Bool]) -> Int? {
        let width = taken.count
        // Twice the centre, to stay in integers for even and odd widths alike.
        let rowCentreTimesTwo = width - 1
        var best: (start: Int, distance: Int)?
        var runStart = 0
        while runStart < width {
            guard !taken[runStart] else {
                runStart += 1
                continue
            }
            var runEnd = runStart
            while runEnd < width, !taken[runEnd] { runEnd += 1 }
            if runEnd - runStart >= length {
                // The ideal start centres the block on the row; clamp it into this run.
                let ideal = (rowCentreTimesTwo - (length - 1)) / 2
                let start = min(max(ideal, runStart), runEnd - length)
                let distance = abs(2 * start + length - 1 - rowCentreTimesTwo)
                if best == nil || distance < best!.distance { best = (start, distance) }
            }
            runStart = runEnd
        }
        return best?.start
    }

    static func decideExactSeats(_ labels: [SeatLabel], in inventory: inout Inventory) -> Outcome {
        var targets: [(rowIndex: Int, seat: Int)] = []
        targets.reserveCapacity(labels.count)
        for label in labels {
            guard let sectionIndex = inventory.sectionIndex(named: label.section),
                let rowIndex = inventory.rowIndex(sectionIndex: sectionIndex, row: label.row),
                label.seat >= 1, label.seat <= inventory.rows[rowIndex].taken.count,
                !inventory.rows[rowIndex].taken[label.seat - 1],
                !targets.contains(where: { $0.rowIndex == rowIndex && $0.seat == label.seat - 1 })
            else { return .rejected(.seatsUnavailable) }
            targets.append((rowIndex, label.seat - 1))
        }
        let seats = targets.map { inventory.takeSeat(rowIndex: $0.rowIndex, seat: $0.seat) }
        return .confirmed(quantity: seats.count, seats: seats)
    }
}
