import ArgumentParser
import BoxofficeCore
import BoxofficeStore
import Foundation
import Logging

struct EventCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "event", abstract: "Create and inspect events.", subcommands: [Create.self, Show.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create an event and print its id.",
            discussion: "General admission: --capacity 10000. Seat map: --sections A:10x20,B:5x30 (NAME:ROWSxSEATS_PER_ROW, best section first).")

        @Option(help: "Event name.") var name: String
        @Option(help: "General-admission tickets.") var capacity: Int?
        @Option(help: "Seat map, NAME:ROWSxSEATS,... e.g. A:10x20,B:5x30.") var sections: String?
        @Option(
            help: ArgumentHelp(
                "Seconds a granted intent is held for payment (0...\(Store.holdSecondsMax)); 0 sells it outright.",
                discussion:
                    "With holds, a granted intent is settled `held`, with its seats and an `expires_at`, and counted in the event's held tickets."))
        var holdSeconds = 0
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var logging: LoggingOptions

        func validate() throws {
            guard (capacity == nil) != (sections == nil) else { throw ValidationError("give exactly one of --capacity or --sections") }
            _ = try layout()
            guard (0...Store.holdSecondsMax).contains(holdSeconds) else {
                throw ValidationError("--hold-seconds must be 0...\(Store.holdSecondsMax)")
            }
        }

        func layout() throws -> EventLayout {
            if let capacity {
                guard (1...EventLayout.capacityMax).contains(capacity) else {
                    throw ValidationError("--capacity must be 1...\(EventLayout.capacityMax)")
                }
                return .generalAdmission(capacity: capacity)
            }
            let layout = EventLayout.seatMap(try parseSections(sections ?? ""))
            guard layout.capacity <= EventLayout.capacityMax else {
                throw ValidationError("the seat map holds more than \(EventLayout.capacityMax) seats")
            }
            return layout
        }

        func run() async throws {
            let logger = logging.bootstrap(label: "boxoffice.event")
            let layout = try layout()
            let (name, holdSeconds) = (self.name, self.holdSeconds)
            let summary = try await withStore(try database.configuration(), logger: logger) {
                try await $0.createEvent(name: name, layout: layout, holdSeconds: holdSeconds)
            }
            print(summary.id)
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print an event's counters.")
        @Argument(help: "Event id.") var id: Int64
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var logging: LoggingOptions

        func run() async throws {
            let logger = logging.bootstrap(label: "boxoffice.event")
            let id = self.id
            guard let summary = try await withStore(try database.configuration(), logger: logger, { try await $0.eventSummary(id) }) else {
                throw CommandError("there is no event \(id)")
            }
            print(
                "event \(summary.id) \"\(summary.name)\": capacity \(summary.capacity), sold \(summary.sold), held \(summary.held), available \(summary.available), pending \(summary.pending), hold_seconds \(summary.holdSeconds)"
            )
        }
    }
}

/// Parses `A:10x20,B:5x30` into sections; errors name the part that is wrong.
func parseSections(_ text: String) throws -> [SectionLayout] {
    var sections: [SectionLayout] = []
    for part in text.split(separator: ",") {
        let pieces = part.split(separator: ":")
        let size = pieces.count == 2 ? pieces[1].split(separator: "x") : []
        guard pieces.count == 2, SectionLayout.isValidName(pieces[0]), size.count == 2,
            let rows = Int(size[0]), let seats = Int(size[1]),
            (1...SectionLayout.rowsMax).contains(rows), (1...SectionLayout.seatsPerRowMax).contains(seats)
        else {
            throw ValidationError(
                "section \(part) must look like A:10x20 (name, rows 1...\(SectionLayout.rowsMax), seats per row 1...\(SectionLayout.seatsPerRowMax))")
        }
        guard !sections.contains(where: { $0.name == pieces[0] }) else { throw ValidationError("section \(pieces[0]) is listed twice") }
        sections.append(SectionLayout(name: String(pieces[0]), rows: rows, seatsPerRow: seats))
    }
    guard !sections.isEmpty else { throw ValidationError("--sections needs at least one section, e.g. A:10x20") }
    return sections
}
