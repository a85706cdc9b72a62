/// Rows as an array, so a test asserts how many came back: a `for try await row in … { #expect }`
/// loop passes when the query returns nothing at all.
extension AsyncSequence where Self: Sendable, Element: Sendable {
    func all() async throws -> [Element] {
        var elements: [Element] = []
        for try await element in self { elements.append(element) }
        return elements
    }
}
