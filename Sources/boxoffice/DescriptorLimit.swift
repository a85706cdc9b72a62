#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The process's open-file limit, checked against what `serve` may open: running out of descriptors
/// is not a refusal but a crash (the runtime itself needs one now and then, e.g. to read
/// `/proc/<tid>/stat`), so the client connection cap must leave room below the limit.
enum DescriptorLimit {
    /// Descriptors kept for everything that is not a client or database connection: the listening
    /// socket, log and standard streams, event-loop internals, the runtime's own files.
    static let reserve = 128

    /// Raises the soft limit towards the hard one if `needed` exceeds it (or sets it to `exactly`), and
    /// returns the limit now in force; throws a message that says what to change when the limit
    /// cannot cover `needed`.
    static func raise(toCover needed: Int, exactly: Int? = nil) throws -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return needed }
        if let exactly {
            guard exactly >= needed else {
                throw CommandError(
                    "--open-files-max \(exactly) is below the \(needed) descriptors serve may need (--client-connections-max + --connections-max + \(reserve) in reserve)"
                )
            }
            var wanted = limit
            wanted.rlim_cur = rlim_t(exactly)
            guard setrlimit(Int32(RLIMIT_NOFILE.rawValue), &wanted) == 0 else {
                throw CommandError("cannot set the open-file limit to \(exactly) (hard limit \(limit.rlim_max))")
            }
            return exactly
        }
        if Int(clamping: limit.rlim_cur) >= needed { return Int(clamping: limit.rlim_cur) }
        if Int(clamping: limit.rlim_max) >= needed {
            var raised = limit
            raised.rlim_cur = rlim_t(needed)
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { return needed }
        }
        throw CommandError(
            """
            the open-file limit (soft \(limit.rlim_cur), hard \(limit.rlim_max)) is below the \(needed) descriptors serve may need \
            (--client-connections-max + --connections-max + \(reserve) in reserve): raise it (ulimit -n, LimitNOFILE=) \
            or lower --client-connections-max
            """)
    }
}
