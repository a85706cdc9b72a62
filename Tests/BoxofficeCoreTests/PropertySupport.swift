import Testing

@testable import BoxofficeCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// Shared machinery for the allocator's property tests: a seeded PRNG, a runner that reports the seed of
// a failing case, an independent model of a seat map, and random scenario generators (long because the
// model must stand on its own, apart from `Inventory`'s bookkeeping).
//
// Replaying a failure: every failing expectation names its case seed ("seed 20417: ..."). Run
// `BOXOFFICE_SEED=20417 swift test --filter BoxofficeCoreTests` to run every property on that one seed.

// MARK: - Seeded randomness

// `SplitMix64` lives in BoxofficeCore (one seeded generator for the sale generator, the fault tests and
// these properties). Properties draw through its own `int(_:)`, never the standard library's
// `random(in:using:)`, whose algorithms are not promised to stay the same across releases: a recorded
// seed must keep meaning the same case.

// MARK: - Property runner

/// One random case: its seed, its generator, and expectations that carry the seed in their message.
final class Checker {
    let seed: UInt64
    var rng: SplitMix64
    private(set) var failures = 0

    init(seed: UInt64) {
        self.seed = seed
        self.rng = SplitMix64(seed: seed)
    }

    func expect(
        _ condition: Bool,
        _ message: @autoclosure () -> String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        if !condition { failures += 1 }
        #expect(condition, "seed \(seed): \(message())", sourceLocation: sourceLocation)
    }
}

enum Property {
    static let casesPerProperty = 300

    /// `BOXOFFICE_SEED=<n>` replays exactly one case in every property.
    static let replaySeed: UInt64? = getenv("BOXOFFICE_SEED").flatMap { UInt64(String(cString: $0)) }

    /// Runs `body` on `cases` seeds (`salt * 10_000 + i`, so a seed says which property it came from),
    /// stopping at the first failing seed so a report shows one counterexample rather than hundreds.
    static func forAll(salt: UInt64, cases: Int = casesPerProperty, _ body: (Checker) -> Void) {
        let seeds = replaySeed.map { [$0] } ?? (0..<UInt64(cases)).map { salt * 10_000 + $0 }
        for seed in seeds {
            let checker = Checker(seed: seed)
            body(checker)
            if checker.failures > 0 { break }
        }
    }
}

// MARK: - Independent model of a seat map

/// Which seats of a layout are taken, kept as plain nested arrays, independent of `Inventory`.
/// A row `Inventory` does not hold (sold out) is all taken here.
struct SeatGrid: Equatable, CustomStringConvertible {
    let sections: [SectionLayout]
    /// `taken[section][row - 1][seat - 1]`.
    private(set) var taken: [[[Bool]]]

    /// Everything free.
    init(sections: [SectionLayout]) {
        self.sections = sections
        self.taken = sections.map { Array(repeating: Array(repeating: false, count: $0.seatsPerRow), count: $0.rows) }
    }

    /// Reads back what an `Inventory` holds: rows it has are copied, rows it lacks count as sold out.
    init(sections: [SectionLayout], loadedRows: [SeatRow]) {
        self.sections = sections
        self.taken = sections.map { Array(repeating: Array(repeating: true, count: $0.seatsPerRow), count: $0.rows) }
        for row in loadedRows { taken[row.sectionIndex][row.row - 1] = row.taken }
    }

    func sectionIndex(named name: String) -> Int? { sections.firstIndex { $0.name == name } }

    /// Zero-based coordinates of `label`, or nil when the layout has no such seat.
    func position(of label: SeatLabel) -> (section: Int, row: Int, seat: Int)? {
        guard let s = sectionIndex(named: label.section),
            (1...sections[s].rows).contains(label.row),
            (1...sections[s].seatsPerRow).contains(label.seat)
        else { return nil }
        return (s, label.row - 1, label.seat - 1)
    }

    func exists(_ label: SeatLabel) -> Bool { position(of: label) != nil }

    func isFree(_ label: SeatLabel) -> Bool {
        guard let p = position(of: label) else { return false }
        return !taken[p.section][p.row][p.seat]
    }

    func isTaken(section: Int, row: Int, seat: Int) -> Bool { taken[section][row - 1][seat - 1] }

    func label(section: Int, row: Int, seat: Int) -> SeatLabel {
        SeatLabel(section: sections[section].name, row: row, seat: seat)
    }

    mutating func take(_ label: SeatLabel) {
        let p = position(of: label)!
        taken[p.section][p.row][p.seat] = true
    }

    mutating func take(section: Int, row: Int, seat: Int) { taken[section][row - 1][seat - 1] = true }

    /// Free seats of `sectionIndexes`, front to back: section order, then row, then seat.
    func freeLabels(inSections sectionIndexes: [Int]) -> [SeatLabel] {
        var labels: [SeatLabel] = []
        for s in sectionIndexes {
            for (r, row) in taken[s].enumerated() {
                for (k, isTaken) in row.enumerated() where !isTaken {
                    labels.append(label(section: s, row: r + 1, seat: k + 1))
                }
            }
        }
        return labels
    }

    func freeCount(inSections sectionIndexes: [Int]) -> Int {
        sectionIndexes.reduce(0) { total, s in total + taken[s].reduce(0) { $0 + $1.lazy.filter { !$0 }.count } }
    }

    var freeCount: Int { freeCount(inSections: Array(sections.indices)) }

    /// Zero-based starts of every block of `length` free seats in a row (1-based `row`).
    func freeBlockStarts(length: Int, section: Int, row: Int) -> [Int] {
        let seats = taken[section][row - 1]
        guard length <= seats.count else { return [] }
        return (0...(seats.count - length)).filter { start in !seats[start..<(start + length)].contains(true) }
    }

    /// The first row, in section order then row number, holding `length` adjacent free seats.
    func firstRowWithBlock(length: Int, inSections sectionIndexes: [Int]) -> (section: Int, row: Int)? {
        for s in sectionIndexes {
            for row in 1...sections[s].rows where !freeBlockStarts(length: length, section: s, row: row).isEmpty {
                return (s, row)
            }
        }
        return nil
    }

    /// What the Store loads: one `SeatRow` per row with at least one free seat.
    func loadedRows() -> [SeatRow] {
        var rows: [SeatRow] = []
        for (s, section) in taken.enumerated() {
            for (r, seats) in section.enumerated() where seats.contains(false) {
                rows.append(SeatRow(sectionIndex: s, row: r + 1, taken: seats))
            }
        }
        return rows
    }

    func makeInventory() -> Inventory { Inventory(sections: sections, rows: loadedRows()) }

    /// A picture: `.` free, `X` taken, one line per row.
    var description: String {
        var lines: [String] = []
        for (s, section) in sections.enumerated() {
            lines.append("\(section.name) (\(section.rows)x\(section.seatsPerRow))")
            for (r, seats) in taken[s].enumerated() {
                lines.append("  \(r + 1): " + String(seats.map { $0 ? "X" : "." }))
            }
        }
        return lines.joined(separator: "\n")
    }
}

// MARK: - Random scenarios

enum Generate {
    static let nameAlphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")

    /// A section name from the documented alphabet (letters, digits, `_`), 1 to 16 characters.
    static func sectionName(_ rng: inout SplitMix64) -> String {
        if rng.chance(50) { return String(rng.element(Array("ABCDEFGH"))) }
        let length = rng.chance(20) ? SectionLayout.nameLengthMax : rng.int(1...SectionLayout.nameLengthMax)
        return String((0..<length).map { _ in rng.element(nameAlphabet) })
    }

    /// A valid name that is not any of `taken`.
    static func sectionName(_ rng: inout SplitMix64, avoiding taken: Set<String>) -> String {
        while true {
            let name = sectionName(&rng)
            if !taken.contains(name) { return name }
        }
    }

    static func quantity(_ rng: inout SplitMix64) -> Int { rng.chance(80) ? rng.int(1...4) : rng.int(5...10) }
}

struct GeneralAdmissionScenario: CustomStringConvertible {
    let capacity: Int
    let available: Int
    let batch: [PendingIntent]

    static func random(_ rng: inout SplitMix64, repeatPercent: Int = 10) -> GeneralAdmissionScenario {
        let capacity = rng.chance(5) ? 0 : rng.int(1...60)
        let available = rng.chance(15) ? capacity : rng.int(0...capacity)
        var requests: [PurchaseRequest] = []
        for _ in 0..<rng.int(1...25) {
            if !requests.isEmpty, rng.chance(repeatPercent) {
                requests.append(rng.element(requests))
            } else {
                requests.append(.anywhere(quantity: rng.int(1...6)))
            }
        }
        return GeneralAdmissionScenario(capacity: capacity, available: available, batch: intents(requests))
    }

    var description: String {
        "capacity \(capacity), available \(available), batch \(batch.map(\.request.quantity))"
    }
}

struct SeatMapScenario: CustomStringConvertible {
    /// Percentages of `.anywhere`, `.inSection` and `.seats` requests (the rest of 100 is `.seats`).
    struct Mix {
        var anywhere = 30
        var inSection = 35
        static let standard = Mix()
        static let mostlyExactSeats = Mix(anywhere: 15, inSection: 15)
        static let bestAvailableOnly = Mix(anywhere: 50, inSection: 50)
    }

    let sections: [SectionLayout]
    let initial: SeatGrid
    let batch: [PendingIntent]

    var description: String {
        "batch:\n" + batch.enumerated().map { "  #\($0.offset) \($0.element.request)" }.joined(separator: "\n")
            + "\ninitial seats:\n" + initial.description
    }

    static func random(
        _ rng: inout SplitMix64,
        mix: Mix = .standard,
        repeatPercent: Int = 10,
        maxIntents: Int = 30
    ) -> SeatMapScenario {
        // Layout: 1–4 sections, 1–12 rows, 1–20 seats per row, distinct valid names.
        var names: Set<String> = []
        var sections: [SectionLayout] = []
        for _ in 0..<rng.int(1...4) {
            let name = Generate.sectionName(&rng, avoiding: names)
            names.insert(name)
            sections.append(SectionLayout(name: name, rows: rng.int(1...12), seatsPerRow: rng.int(1...20)))
        }

        // Initially taken seats: a density for the event, and some rows sold out whole (absent from the inventory).
        var grid = SeatGrid(sections: sections)
        let density = rng.element([0, 0, 10, 30, 50, 70, 90, 100])
        let soldOutRows = rng.element([0, 10, 30])
        for (s, section) in sections.enumerated() {
            for row in 1...section.rows {
                let wholeRow = rng.chance(soldOutRows)
                for seat in 1...section.seatsPerRow where wholeRow || rng.chance(density) {
                    grid.take(section: s, row: row, seat: seat)
                }
            }
        }

        var requests: [PurchaseRequest] = []
        for _ in 0..<rng.int(1...maxIntents) {
            if !requests.isEmpty, rng.chance(repeatPercent) {
                requests.append(rng.element(requests))
                continue
            }
            let roll = rng.int(1...100)
            if roll <= mix.anywhere {
                requests.append(.anywhere(quantity: Generate.quantity(&rng)))
            } else if roll <= mix.anywhere + mix.inSection {
                let name = rng.chance(4) ? Generate.sectionName(&rng, avoiding: names) : rng.element(sections).name
                requests.append(.inSection(name, quantity: Generate.quantity(&rng)))
            } else {
                requests.append(.seats(randomLabels(&rng, grid: grid, names: names)))
            }
        }
        return SeatMapScenario(sections: sections, initial: grid, batch: intents(requests))
    }

    /// 1–5 distinct labels: a block in one row, seats scattered over the layout, or seats free at the start;
    /// now and then one that is not in the layout at all.
    static func randomLabels(_ rng: inout SplitMix64, grid: SeatGrid, names: Set<String>) -> [SeatLabel] {
        let count = rng.int(1...5)
        var labels: [SeatLabel] = []
        switch rng.int(1...3) {
        case 1:
            let s = rng.int(0...(grid.sections.count - 1))
            let section = grid.sections[s]
            let row = rng.int(1...section.rows)
            let start = rng.int(1...section.seatsPerRow)
            for seat in start...min(start + count - 1, section.seatsPerRow) {
                labels.append(grid.label(section: s, row: row, seat: seat))
            }
        case 2:
            for _ in 0..<count {
                let s = rng.int(0...(grid.sections.count - 1))
                let section = grid.sections[s]
                labels.append(grid.label(section: s, row: rng.int(1...section.rows), seat: rng.int(1...section.seatsPerRow)))
            }
        default:
            let free = grid.freeLabels(inSections: Array(grid.sections.indices))
            for _ in 0..<count where !free.isEmpty { labels.append(rng.element(free)) }
            if labels.isEmpty { labels.append(grid.label(section: 0, row: 1, seat: 1)) }
        }
        if rng.chance(5) {
            let section = rng.element(grid.sections)
            let outside: SeatLabel
            switch rng.int(1...3) {
            case 1: outside = SeatLabel(section: section.name, row: section.rows + 1, seat: 1)
            case 2: outside = SeatLabel(section: section.name, row: 1, seat: section.seatsPerRow + 1)
            default: outside = SeatLabel(section: Generate.sectionName(&rng, avoiding: names), row: 1, seat: 1)
            }
            labels[rng.int(0...(labels.count - 1))] = outside
        }
        var seen: Set<SeatLabel> = []
        return labels.filter { seen.insert($0).inserted }
    }
}

func intents(_ requests: [PurchaseRequest]) -> [PendingIntent] {
    requests.enumerated().map { PendingIntent(id: Int64($0.offset + 1), request: $0.element) }
}

// MARK: - Running a seat-map scenario

/// One scenario allocated as a single batch, with the model's view of the seats before every decision.
///
/// The "before" grids are rebuilt from the initial seats plus the seats of earlier confirmed outcomes, not
/// from the allocator's inventory, so every expectation about a decision is judged against our own model.
struct SeatMapRun {
    let scenario: SeatMapScenario
    /// The rows handed to `Inventory` (in a shuffled order), sorted by section and row.
    let loadedRows: [SeatRow]
    let initialAvailable: Int
    let outcomes: [Outcome]
    let inventory: Inventory
    /// `before[i]` is the model just before intent `i` was decided.
    let before: [SeatGrid]
    /// The model after every confirmed outcome.
    let modelAfter: SeatGrid

    init(_ scenario: SeatMapScenario, rng: inout SplitMix64) {
        self.scenario = scenario
        var rows = scenario.initial.loadedRows()
        rng.shuffle(&rows)  // `Inventory` documents that rows may come in any order.
        var inventory = Inventory(sections: scenario.sections, rows: rows)
        initialAvailable = inventory.available
        outcomes = Allocator.allocate(scenario.batch, from: &inventory)
        self.inventory = inventory
        loadedRows = rows.sorted { ($0.sectionIndex, $0.row) < ($1.sectionIndex, $1.row) }

        var model = scenario.initial
        var before: [SeatGrid] = []
        for outcome in outcomes {
            before.append(model)
            if case .confirmed(_, let seats) = outcome {
                for seat in seats where model.isFree(seat) { model.take(seat) }
            }
        }
        self.before = before
        modelAfter = model
    }

    /// Decisions paired with their request and the model before them.
    var steps: [(index: Int, request: PurchaseRequest, before: SeatGrid, outcome: Outcome)] {
        zip(scenario.batch, zip(before, outcomes)).enumerated().map { ($0.offset, $0.element.0.request, $0.element.1.0, $0.element.1.1) }
    }
}

extension Outcome {
    var seats: [SeatLabel] {
        if case .confirmed(_, let seats) = self { return seats }
        return []
    }

    var confirmedQuantity: Int {
        if case .confirmed(let quantity, _) = self { return quantity }
        return 0
    }

    var rejection: RejectionReason? {
        if case .rejected(let reason) = self { return reason }
        return nil
    }
}

/// A snapshot of everything an `Inventory` exposes, to prove a decision changed nothing.
struct InventorySnapshot: Equatable {
    let available: Int
    let rows: [SeatRow]
    let changedRowIndexes: Set<Int>

    init(_ inventory: Inventory) {
        available = inventory.available
        rows = inventory.rows
        changedRowIndexes = inventory.changedRowIndexes
    }
}
