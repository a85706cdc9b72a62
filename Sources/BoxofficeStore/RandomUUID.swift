import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Version 4 UUIDs for intents, from the kernel's CSPRNG, without a system call per id.
///
/// Foundation's `UUID()` on Linux opens, reads and closes `/dev/urandom` for every id: three system
/// calls on each intake request (measured with `strace -c` on `serve`). This reads the same kernel
/// randomness from one descriptor kept open, 4 KiB at a time, and hands it out 16 bytes per id; the bytes are used
/// once and never derived from each other, so ids stay unguessable (they are capabilities: whoever
/// knows one may read that intent's seats).
public enum RandomUUID {
    static let bufferBytes = 4_096
    private static let pool = Mutex<(bytes: [UInt8], next: Int)>(([UInt8](repeating: 0, count: bufferBytes), bufferBytes))

    public static func make() -> UUID {
        var uuid: uuid_t = pool.withLock { pool in
            if pool.next + 16 > pool.bytes.count {
                refill(&pool.bytes)
                pool.next = 0
            }
            defer { pool.next += 16 }
            return pool.bytes.withUnsafeBytes { raw in
                raw.loadUnaligned(fromByteOffset: pool.next, as: uuid_t.self)
            }
        }
        uuid.6 = (uuid.6 & 0x0F) | 0x40  // version 4
        uuid.8 = (uuid.8 & 0x3F) | 0x80  // RFC 4122 variant
        return UUID(uuid: uuid)
    }

    /// `/dev/urandom`, opened once for the life of the process (-1 if it could not be).
    private static let urandom: Int32 = open("/dev/urandom", O_RDONLY | O_CLOEXEC)

    private static func refill(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { raw in
            var filled = 0
            while filled < raw.count, urandom >= 0 {
                let got = read(urandom, raw.baseAddress! + filled, raw.count - filled)
                if got > 0 { filled += got } else if got < 0 && errno == EINTR { continue } else { break }
            }
            // Without /dev/urandom, the standard library's generator (also the kernel's CSPRNG).
            var generator = SystemRandomNumberGenerator()
            while filled < raw.count {
                raw[filled] = UInt8.random(in: .min ... .max, using: &generator)
                filled += 1
            }
        }
    }
}
