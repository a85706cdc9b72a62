import BoxofficeCore
import BoxofficeStore

/// A validated `POST /events` body.
struct NewEvent: Equatable {
    let name: String
    let layout: EventLayout
    /// 0 (the default): a granted intent is sold; else it is held this long for payment.
    var holdSeconds = 0
}

/// Event requests checked without a database: parsed input in, a typed request or an ``APIError`` out.
enum EventValidation {
    static let fields: Set<String> = ["name", "capacity", "sections", "hold_seconds"]
    static let sectionFields: Set<String> = ["name", "rows", "seats_per_row"]

    /// The `{event}` path parameter: a positive integer.
    static func eventID(_ text: String?) throws(APIError) -> EventID {
        let text = text ?? ""
        guard let id = EventID(text), id > 0 else {
            throw APIError(.badRequest, "invalid_id", "event id must be a positive integer, got \(text.prefix(40))")
        }
        return id
    }

    /// The event a body describes: a name and either a capacity (general admission) or sections (a seat map).
    /// `hold_seconds` (optional, 0...``Store/holdSecondsMax``): how long a granted intent is held for payment.
    static func newEvent(_ body: JSONObject, limits: APIConfiguration) throws -> NewEvent {
        let name = try body.string("name", lengthMax: limits.eventNameLengthMax)!
        let holdSeconds = try body.integer("hold_seconds", in: 0...Store.holdSecondsMax, required: false) ?? 0
        switch (body.has("capacity"), body.has("sections")) {
        case (true, false):
            return NewEvent(
                name: name, layout: .generalAdmission(capacity: try body.integer("capacity", in: 1...EventLayout.capacityMax)!),
                holdSeconds: holdSeconds)
        case (false, true):
            var sections: [SectionLayout] = []
            for item in try body.array("sections", countMax: limits.sectionsMax) ?? [] {
                sections.append(try section(item, after: sections))
            }
            let layout = EventLayout.seatMap(sections)
            guard layout.capacity <= EventLayout.capacityMax else {
                throw APIError.invalid("the seat map holds \(layout.capacity) seats; at most \(EventLayout.capacityMax) are allowed")
            }
            return NewEvent(name: name, layout: layout, holdSeconds: holdSeconds)
        default:
            throw APIError.invalid("give either capacity (general admission) or sections (a seat map), not both or neither")
        }
    }

    /// One item of `sections`, whose name must differ from those of `earlier`.
    static func section(_ item: JSONValue, after earlier: [SectionLayout]) throws -> SectionLayout {
        guard case .object(let fields) = item else { throw APIError.invalid("each of sections must be an object") }
        let unknown = Set(fields.keys).subtracting(sectionFields)
        guard unknown.isEmpty else { throw APIError.invalid("unknown field(s) in a section: \(unknown.sorted().joined(separator: ", "))") }
        let section = JSONObject(fields: fields)
        let name = try section.string("name", lengthMax: SectionLayout.nameLengthMax)!
        guard SectionLayout.isValidName(name) else {
            throw APIError.invalid("section name \(name) must be 1 to \(SectionLayout.nameLengthMax) letters, digits or _")
        }
        guard !earlier.contains(where: { $0.name == name }) else { throw APIError.invalid("section \(name) is listed twice") }
        return SectionLayout(
            name: name,
            rows: try section.integer("rows", in: 1...SectionLayout.rowsMax)!,
            seatsPerRow: try section.integer("seats_per_row", in: 1...SectionLayout.seatsPerRowMax)!)
    }
}

extension APIError {
    static func eventNotFound(_ id: EventID) -> APIError { APIError(.notFound, "event_not_found", "there is no event \(id)") }
}
