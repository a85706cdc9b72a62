import CoreMetrics
import Metrics

/// What `boxoffice work --processes` records about its own children, beside the children's metrics
/// it re-serves (``PrometheusText/merge(_:)``).
public final class PoolMetrics: Sendable {
    let desired: Gauge
    let alive: Gauge
    let restarts: Counter
    let scrapeFailures: Counter

    public init(_ metrics: BoxofficeMetrics) {
        typealias Names = BoxofficeMetrics.Names
        desired = Gauge(label: Names.poolWorkersDesired, factory: metrics.factory)
        alive = Gauge(label: Names.poolWorkersAlive, factory: metrics.factory)
        restarts = Counter(label: Names.poolRestarts, factory: metrics.factory)
        scrapeFailures = Counter(label: Names.poolScrapeFailures, factory: metrics.factory)
    }

    /// The pool's size now: children wanted, and child processes running (those finishing their last batch included).
    public func update(desired: Int, alive: Int) {
        self.desired.record(desired)
        self.alive.record(alive)
    }

    /// A child that exited unasked was replaced (or is waiting out its back-off to be).
    public func restarted() { restarts.increment() }

    /// A child's metrics did not answer within the scrape's bound; its series are missing from that scrape.
    public func scrapeFailed() { scrapeFailures.increment() }
}

/// The Prometheus text format (0.0.4) of several processes as one exposition.
public enum PrometheusText {
    /// Merges expositions into one: each family once (its `# HELP` and `# TYPE` from the first part that
    /// has it, families in order of first appearance), its samples from every part in order, each part's
    /// samples carrying that part's extra label (`worker="2"`) when it has one. Lines that are neither
    /// samples nor HELP/TYPE comments are dropped.
    public static func merge(_ parts: [(label: (name: String, value: String)?, text: String)]) -> String {
        var order: [String] = []
        var families: [String: (help: String?, type: String?, samples: [String])] = [:]
        for part in parts {
            let extra = part.label.map { "\($0.name)=\"\(escaped($0.value))\"" }
            var current: String?
            for line in part.text.split(separator: "\n") {
                if line.hasPrefix("#") {
                    let words = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: true)
                    guard words.count >= 3, words[1] == "HELP" || words[1] == "TYPE" else { continue }
                    let name = String(words[2])
                    if families[name] == nil {
                        order.append(name)
                        families[name] = (nil, nil, [])
                    }
                    if words[1] == "HELP", families[name]?.help == nil { families[name]?.help = String(line) }
                    if words[1] == "TYPE", families[name]?.type == nil { families[name]?.type = String(line) }
                    current = name
                    continue
                }
                guard let nameEnd = line.firstIndex(where: { $0 == "{" || $0 == " " }) else { continue }
                // A sample before any TYPE line is its own untyped family.
                let family = current ?? String(line[..<nameEnd])
                if families[family] == nil {
                    order.append(family)
                    families[family] = (nil, nil, [])
                }
                families[family]?.samples.append(labelled(line, nameEnd: nameEnd, extra: extra))
            }
        }
        var out = ""
        for name in order {
            guard let family = families[name] else { continue }
            if let help = family.help { out += help + "\n" }
            if let type = family.type { out += type + "\n" }
            for sample in family.samples { out += sample + "\n" }
        }
        return out
    }

    /// `name{a="b"} 1` → `name{worker="2",a="b"} 1`; `name 1` → `name{worker="2"} 1`.
    static func labelled(_ line: Substring, nameEnd: Substring.Index, extra: String?) -> String {
        guard let extra else { return String(line) }
        let name = line[..<nameEnd]
        if line[nameEnd] == "{" {
            let rest = line[line.index(after: nameEnd)...]
            return "\(name){\(extra)\(rest.first == "}" ? "" : ",")\(rest)"
        }
        return "\(name){\(extra)}\(line[nameEnd...])"
    }

    static func escaped(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }
}
