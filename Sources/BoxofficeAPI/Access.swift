import Hummingbird

/// Who may write: producers enqueue intents, administrators create events (and may enqueue too).
/// Reads need no token: an intent's id is an unguessable UUID, and an event's counts are public.
public enum AccessControl: Sendable {
    /// No token is checked. `serve` only runs open when told `--no-auth`.
    case open
    /// Bearer tokens, compared in constant time.
    case tokens(producer: String, admin: String)

    /// Shortest token accepted: anything shorter is guessable.
    public static let tokenLengthMin = 16
    /// Longest token accepted, so a comparison is bounded.
    public static let tokenLengthMax = 512

    public enum Role: Sendable {
        case producer
        case admin
    }

    /// Tokens from `BOXOFFICE_PRODUCER_TOKEN` and `BOXOFFICE_ADMIN_TOKEN`; nil when neither is set.
    /// Throws when only one is set or one is malformed, so a typo never starts an open server.
    public static func fromEnvironment(_ environment: [String: String]) throws(AccessError) -> AccessControl? {
        let producer = environment["BOXOFFICE_PRODUCER_TOKEN"], admin = environment["BOXOFFICE_ADMIN_TOKEN"]
        switch (producer, admin) {
        case (nil, nil):
            return nil
        case (let producer?, let admin?):
            return try validated(producer: producer, admin: admin)
        default:
            throw AccessError("set both BOXOFFICE_PRODUCER_TOKEN and BOXOFFICE_ADMIN_TOKEN (or neither, with --no-auth)")
        }
    }

    /// Validated tokens: `tokenLengthMin`…`tokenLengthMax` visible ASCII characters, producer ≠ admin.
    public static func validated(producer: String, admin: String) throws(AccessError) -> AccessControl {
        for (name, token) in [("BOXOFFICE_PRODUCER_TOKEN", producer), ("BOXOFFICE_ADMIN_TOKEN", admin)] {
            guard (tokenLengthMin...tokenLengthMax).contains(token.utf8.count),
                  token.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F })
            else {
                throw AccessError("\(name) must be \(tokenLengthMin) to \(tokenLengthMax) visible ASCII characters (try: openssl rand -hex 24)")
            }
        }
        guard producer != admin else { throw AccessError("BOXOFFICE_PRODUCER_TOKEN and BOXOFFICE_ADMIN_TOKEN must differ") }
        return .tokens(producer: producer, admin: admin)
    }

    /// A fresh random token (192 bits from the system's CSPRNG, hex), for the demo, the benchmark and tests.
    public static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<24).map { _ in
            let byte = UInt8.random(in: 0...255, using: &generator)
            return String(byte, radix: 16).count == 1 ? "0" + String(byte, radix: 16) : String(byte, radix: 16)
        }.joined()
    }

    /// Throws 401 when the request carries no bearer token, 403 when it does not grant `role`.
    /// Runs before the body is read, so a refused request costs nothing and writes nothing.
    func authorize(_ request: Request, as role: Role) throws(APIError) {
        guard case .tokens(let producer, let admin) = self else { return }
        guard let header = request.headers[.authorization] else {
            throw APIError.unauthorized("this request needs an Authorization: Bearer <token> header")
        }
        let scheme = "bearer "
        guard header.utf8.count > scheme.utf8.count, header.prefix(scheme.count).lowercased() == scheme else {
            throw APIError.unauthorized("the Authorization header must be Bearer <token>")
        }
        let presented = header.dropFirst(scheme.count).utf8
        // Both comparisons always run, so timing does not tell which token was close.
        let isAdmin = Self.constantTimeEquals(presented, admin.utf8)
        let isProducer = Self.constantTimeEquals(presented, producer.utf8)
        switch role {
        case .admin where isAdmin, .producer where isAdmin || isProducer:
            return
        case .admin:
            throw APIError(.forbidden, "forbidden", "this token may not administer events; use the admin token")
        case .producer:
            throw APIError(.forbidden, "forbidden", "this token may not enqueue intents")
        }
    }

    /// Compares in time that depends only on the length of `expected`, never on where bytes differ.
    static func constantTimeEquals(_ presented: some Collection<UInt8>, _ expected: String.UTF8View) -> Bool {
        let presented = Array(presented.prefix(tokenLengthMax + 1))
        var difference = presented.count == expected.count ? 0 : 1
        for (index, byte) in expected.enumerated() {
            let other = index < presented.count ? presented[index] : 0
            difference |= Int(byte ^ other)
        }
        return difference == 0
    }
}

/// A configuration mistake in the access tokens: the message says what to set.
public struct AccessError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

extension APIError {
    static func unauthorized(_ message: String) -> APIError {
        APIError(.unauthorized, "unauthorized", message, headers: [.wwwAuthenticate: #"Bearer realm="boxoffice""#])
    }
}
