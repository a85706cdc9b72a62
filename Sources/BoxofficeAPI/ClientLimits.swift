import Synchronization

/// What one HTTP client may hold, and for how long: every bound a hostile client meets before any
/// route runs. Each has a `serve` flag and a line in README.md's limits table.
///
/// An attacker needs no token to open connections, trickle headers or announce a huge body, so
/// these bounds are what keeps a sale's API alive: a connection cap below the descriptor limit
/// (excess connections wait in the kernel's accept queue, never as descriptors or memory of ours),
/// a small request head, and deadlines on every phase in which the client, not the server, is the
/// one who must act.
public struct ClientLimits: Sendable, Equatable {
    /// Open client connections at most; past it the server stops accepting until one closes.
    /// Each open connection costs a descriptor and some memory (measured in README.md).
    public var connectionsMax = 4_096
    /// Request line plus headers, in bytes; larger is answered `431` and closed. The API's own
    /// requests need well under 1 KB.
    public var headerBytesMax = 16 * 1024
    /// Header fields per request at most (`431` above).
    public var headerFieldsMax = 64
    /// A connection with no request in progress (new, or kept alive after a response) is closed
    /// after this long.
    public var idleTimeout: Duration = .seconds(15)
    /// From the first byte of a request to the end of its head; past it `408` and close (slowloris).
    public var headReadTimeout: Duration = .seconds(10)
    /// From the end of a request's head to the end of its body; past it `408` and close (slow bodies,
    /// bodies announced but never sent). Also how long an answer may wait for a client that has
    /// stopped reading (the socket's buffers full) before the connection is closed.
    public var bodyReadTimeout: Duration = .seconds(10)

    public init() {}
}

/// Counts what the client bounds did, for logs and tests: how many connections were closed by which
/// bound. Shared by every connection of the server.
public final class ClientLimitCounters: Sendable {
    let idleClosed = ManagedCounter()
    let headTimeouts = ManagedCounter()
    let bodyTimeouts = ManagedCounter()
    let malformed = ManagedCounter()
    let headTooLarge = ManagedCounter()
    let open = ManagedCounter()
    let capReached = ManagedCounter()
    /// Connections closed because the client stopped reading its answers.
    let sendStalls = ManagedCounter()
    /// Times memory was handed back to the system after connections closed (``MemoryTrimmer``).
    let trims = ManagedCounter()

    public init() {}

    /// One line's worth of figures.
    public var snapshot: [String: Int] {
        [
            "open": open.value, "idle_closed": idleClosed.value, "head_timeouts": headTimeouts.value,
            "body_timeouts": bodyTimeouts.value, "malformed": malformed.value, "head_too_large": headTooLarge.value,
            "cap_reached": capReached.value, "send_stalls": sendStalls.value, "memory_trims": trims.value,
        ]
    }
}

/// A counter several event loops add to.
final class ManagedCounter: Sendable {
    private let storage = Atomic<Int>(0)

    func add(_ delta: Int = 1) { storage.add(delta, ordering: .relaxed) }
    var value: Int { storage.load(ordering: .relaxed) }
}

/// A fixed number of places, taken without waiting: what bounds requests of one kind in progress.
final class Slots: Sendable {
    private let free: Mutex<Int>

    init(_ count: Int) { free = Mutex(count) }

    /// Takes a place if one is free.
    func acquire() -> Bool {
        free.withLock { free in
            guard free > 0 else { return false }
            free -= 1
            return true
        }
    }

    func release() { free.withLock { $0 += 1 } }
}
