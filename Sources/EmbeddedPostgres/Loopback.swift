import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// TCP on 127.0.0.1, the one place that builds a `sockaddr_in`: a free port for a child server
/// (PostgreSQL, PgBouncer, `boxoffice serve`), a raw connection, a listener.
/// It lives in this target because it is the lowest one, and the cluster needs a port before anything else runs.
public enum Loopback {
    /// A TCP port on 127.0.0.1 that nothing listens on right now: binds port 0, reads the port the kernel picked, closes.
    public static func freePort() throws -> Int {
        let descriptor = try socketDescriptor()
        defer { close(descriptor) }
        return try bindAndName(descriptor, port: 0)
    }

    /// A TCP connection to 127.0.0.1:`port` as a blocking descriptor (the caller closes it), or nil when
    /// nothing accepts there.
    public static func connect(port: Int) -> Int32? {
        guard let descriptor = try? socketDescriptor() else { return nil }
        var address = loopbackAddress(port: port)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                #if canImport(Glibc)
                Glibc.connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                #else
                Darwin.connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                #endif
            }
        }
        guard connected == 0 else {
            close(descriptor)
            return nil
        }
        return descriptor
    }

    /// A socket listening on 127.0.0.1 at a port the kernel picks (the caller closes it). Nothing
    /// accepts on it: connections complete in the kernel's backlog and are never read.
    public static func listener(backlog: Int32 = 64) throws -> (descriptor: Int32, port: Int) {
        let descriptor = try socketDescriptor()
        do {
            let port = try bindAndName(descriptor, port: 0)
            #if canImport(Glibc)
            let listening = Glibc.listen(descriptor, backlog)
            #else
            let listening = Darwin.listen(descriptor, backlog)
            #endif
            guard listening == 0 else { throw EmbeddedPostgresError("listen on 127.0.0.1:\(port) failed: \(String(cString: strerror(errno)))") }
            return (descriptor, port)
        } catch {
            close(descriptor)
            throw error
        }
    }

    private static func socketDescriptor() throws -> Int32 {
        #if canImport(Glibc)
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let descriptor = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard descriptor >= 0 else { throw EmbeddedPostgresError("socket() failed: \(String(cString: strerror(errno)))") }
        return descriptor
    }

    private static func loopbackAddress(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        return address
    }

    /// Binds `descriptor` to 127.0.0.1:`port` and returns the port it got.
    private static func bindAndName(_ descriptor: Int32, port: Int) throws -> Int {
        var address = loopbackAddress(port: port)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw EmbeddedPostgresError("bind 127.0.0.1:\(port) failed: \(String(cString: strerror(errno)))") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        guard named == 0 else { throw EmbeddedPostgresError("getsockname failed: \(String(cString: strerror(errno)))") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
