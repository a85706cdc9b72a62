/// One row of a seat map as the allocator sees it: which seats are taken.
///
/// Rows are the unit the Store loads and writes, so a batch touches only the rows it changed.
public struct SeatRow: Hashable, Sendable {
    /// Index of the section in the event's layout.
    public let sectionIndex: Int
    /// 1-based row number; row 1 is nearest the stage.
    public let row: Int
    /// `taken[i]` is seat `i + 1`.
    public private(set) var taken: [Bool]
    public private(set) var free: Int

    public init(sectionIndex: Int, row: Int, taken: [Bool]) {
        self.sectionIndex = sectionIndex
        self.row = row
        self.taken = taken
        self.free = taken.lazy.filter { !$0 }.count
    }

    /// Marks seat `index` (0-based) sold. Selling a sold seat is a bug, so it traps rather than oversells.
    mutating func take(_ index: Int) {
        precondition(!taken[index], "seat \(row)/\(index + 1) allocated twice")
        taken[index] = true
        free -= 1
    }

    /// Frees seat `index` (0-based): a returned seat. Freeing a free seat is refused by the caller.
    mutating func free(_ index: Int) {
        taken[index] = false
        free += 1
    }
}

/// Why returned tickets could not be put back: each means the counters or seat rows disagree with the
/// outcomes that gave them back, so the batch must not go on.
public enum GiveBackProblem: Error, Equatable, Sendable {
    /// More tickets back than the event has room for.
    case overCapacity(returned: Int, available: Int, capacity: Int)
    /// A seat-map return naming a number of seats other than its quantity.
    case seatCountDiffers(quantity: Int, seats: Int)
    /// A seat outside the layout, or in a row that was not loaded.
    case unknownSeat(SeatLabel)
    /// A seat that is free already: it would be returned twice.
    case seatNotTaken(SeatLabel)
}

/// What is left to sell for one event, loaded at the start of a batch and mutated by the allocator.
///
/// For a seat map only rows with a free seat are loaded, plus the rows of seats being given back: a row
/// that is absent is sold out.
public struct Inventory: Sendable {
    public let layout: EventLayout
    /// Tickets left. For a seat map, the free seats of the loaded rows.
    public private(set) var available: Int
    /// Seat-map rows with at least one free seat when loaded, ordered by section, then row.
    public private(set) var rows: [SeatRow]
    /// Indexes into `rows` of the rows the allocator changed: what the Store must write back.
    public private(set) var changedRowIndexes: Set<Int> = []

    private var rowIndexByKey: [RowKey: Int] = [:]
    /// For each section, the range of `rows` that belong to it.
    private var rowRangeBySection: [Range<Int>]

    private struct RowKey: Hashable {
        let sectionIndex: Int
        let row: Int
    }

    /// General admission: `available` tickets left out of the layout's capacity.
    public init(generalAdmission capacity: Int, available: Int) {
        precondition(available >= 0 && available <= capacity, "available \(available) outside 0...\(capacity)")
        self.layout = .generalAdmission(capacity: capacity)
        self.available = available
        self.rows = []
        self.rowRangeBySection = []
    }

    /// A seat map with the rows that still have free seats (any order; they are sorted here).
    public init(sections: [SectionLayout], rows: [SeatRow]) {
        self.layout = .seatMap(sections)
        let sorted = rows.sorted { ($0.sectionIndex, $0.row) < ($1.sectionIndex, $1.row) }
        self.rows = sorted
        self.available = sorted.reduce(0) { $0 + $1.free }
        var ranges: [Range<Int>] = []
        var start = 0
        for sectionIndex in sections.indices {
            var end = start
            while end < sorted.count, sorted[end].sectionIndex == sectionIndex { end += 1 }
            ranges.append(start..<end)
            start = end
        }
        precondition(start == sorted.count, "a row names a section outside the layout")
        self.rowRangeBySection = ranges
        for (index, row) in sorted.enumerated() {
            precondition(row.taken.count == sections[row.sectionIndex].seatsPerRow, "row width differs from its section")
            rowIndexByKey[RowKey(sectionIndex: row.sectionIndex, row: row.row)] = index
        }
    }

    /// The rows the allocator changed, in a stable order.
    public var changedRows: [SeatRow] { changedRowIndexes.sorted().map { rows[$0] } }

    func rowRange(ofSection sectionIndex: Int) -> Range<Int> { rowRangeBySection[sectionIndex] }

    func sectionIndex(named name: String) -> Int? { layout.sections.firstIndex { $0.name == name } }

    func rowIndex(sectionIndex: Int, row: Int) -> Int? { rowIndexByKey[RowKey(sectionIndex: sectionIndex, row: row)] }

    func freeSeats(inSection sectionIndex: Int) -> Int {
        rows[rowRange(ofSection: sectionIndex)].reduce(0) { $0 + $1.free }
    }

    /// Puts returned tickets back into the sale before a batch is allocated (a hold released or expired,
    /// an order cancelled): for general admission `quantity` tickets, for a seat map exactly `seats`,
    /// whose rows must be loaded. Throws, changing nothing, when that would free a free seat or pass
    /// the capacity: a ticket comes back once.
    public mutating func giveBack(quantity: Int, seats: [SeatLabel]) throws(GiveBackProblem) {
        switch layout {
        case .generalAdmission(let capacity):
            guard available + quantity <= capacity else {
                throw .overCapacity(returned: quantity, available: available, capacity: capacity)
            }
            available += quantity
        case .seatMap(let sections):
            guard seats.count == quantity else { throw .seatCountDiffers(quantity: quantity, seats: seats.count) }
            var places: [(rowIndex: Int, seat: Int)] = []
            for label in seats {
                guard let sectionIndex = sections.firstIndex(where: { $0.name == label.section }),
                    let rowIndex = rowIndex(sectionIndex: sectionIndex, row: label.row),
                    label.seat >= 1, label.seat <= rows[rowIndex].taken.count
                else { throw .unknownSeat(label) }
                guard rows[rowIndex].taken[label.seat - 1], !places.contains(where: { $0 == (rowIndex, label.seat - 1) }) else {
                    throw .seatNotTaken(label)
                }
                places.append((rowIndex, label.seat - 1))
            }
            for (rowIndex, seat) in places {
                rows[rowIndex].free(seat)
                changedRowIndexes.insert(rowIndex)
            }
            available += places.count
        }
    }

    mutating func takeGeneralAdmission(_ quantity: Int) {
        precondition(quantity <= available, "general admission oversold")
        available -= quantity
    }

    /// Sells `seat` (0-based) of `rows[rowIndex]` and returns its label.
    mutating func takeSeat(rowIndex: Int, seat: Int) -> SeatLabel {
        rows[rowIndex].take(seat)
        available -= 1
        changedRowIndexes.insert(rowIndex)
        let row = rows[rowIndex]
        return SeatLabel(section: layout.sections[row.sectionIndex].name, row: row.row, seat: seat + 1)
    }
}
