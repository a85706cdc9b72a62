import Foundation
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
        let producer = environment["BOXOFFICE_PRODUCER_TOKEN"]
        let admin = environment["BOXOFFICE_ADMIN_TOKEN"]
        switch (producer, admin) {
        case (nil, nil):
            return nil
        case (let producer?, let admin?):
            return try validated(producer: producer, admin: admin)
        default:
            throw AccessError("set both BOXOFFICE_PRODUCER_TOKEN and BOXOFFICE_ADMIN_TOKEN (or neither, with --no-auth)")
        }
    }

    /// Fewest different characters a token may use: fewer means a pattern (`abab…`, `0000…`), not a draw.
    /// A random 48-hex-digit token (`openssl rand -hex 24`) uses fewer than 8 of the 16 digits with
    /// probability 7 × 10⁻¹⁴; a 32-digit one (`-hex 16`) 4 × 10⁻⁸.
    public static let distinctCharactersMin = 8
    /// Least estimated strength, in bits: length × log2(number of different characters used).
    ///
    /// The estimate is what the token would be worth had each character been drawn uniformly from the
    /// set of characters it actually uses: an upper bound for patterned tokens, an honest figure for
    /// random ones (`openssl rand -hex 24`: 48 × log2(≈15) ≈ 187 bits, at least 48 × 3 = 144 once the
    /// 8-character rule holds). 64 bits is beyond online guessing against the API by many orders of
    /// magnitude. A 16-character token passes only if all 16 characters differ: use the generator.
    public static let estimatedBitsMin = 64.0
    /// Words that mark a token as a placeholder from an example file or a guide, matched anywhere in the
    /// token, ignoring case (so `CHANGE-ME`, `changeme` and `your_secret_here` are all caught).
    ///
    /// Each word has a letter outside a–f, so no hex token can ever contain one; a random base64 token of
    /// 44 characters contains a given five-letter word (either case) with probability about 40 × 32⁻⁵ ≈ 4
    /// in a million, and `xxxx` about 4 in 100,000: draw again if that ever happens.
    public static let placeholderWords = [
        "change", "replace", "example", "placeholder", "secret", "token", "password", "dummy", "sample",
        "fixme", "xxxx",
    ]

    /// Validated tokens, refused with a message naming the rule they break:
    /// - `tokenLengthMin`…`tokenLengthMax` visible ASCII characters;
    /// - none of ``placeholderWords`` in it (a token copied from an example file);
    /// - at least ``distinctCharactersMin`` different characters and ``estimatedBitsMin`` estimated bits;
    /// - not a block repeated (`abcabc…`, `13579bdf13579bdf…`);
    /// - not mostly runs or steps (`aaaa`, `abcd`, `4321`): at most two thirds of neighbouring character
    ///   pairs may be equal or one code point apart (about 1 pair in 6 is, in a random hex token, and
    ///   more than two thirds happens with probability 3 × 10⁻¹⁴ in 48 digits);
    /// - producer ≠ admin.
    ///
    /// A token from `openssl rand -hex 24` is refused with probability about 10⁻¹³ in all. It runs at
    /// start, so a placeholder left in a secret stops the server instead of guarding the sale.
    public static func validated(producer: String, admin: String) throws(AccessError) -> AccessControl {
        for (name, token) in [("BOXOFFICE_PRODUCER_TOKEN", producer), ("BOXOFFICE_ADMIN_TOKEN", admin)] {
            if let problem = weakness(of: token) {
                throw AccessError("\(name) \(problem); generate one with: openssl rand -hex 24")
            }
        }
        guard producer != admin else { throw AccessError("BOXOFFICE_PRODUCER_TOKEN and BOXOFFICE_ADMIN_TOKEN must differ") }
        return .tokens(producer: producer, admin: admin)
    }

    /// Why `token` is not acceptable as a bearer token, or nil when it is (the rules of ``validated(producer:admin:)``).
    static func weakness(of token: String) -> String? {
        let bytes = Array(token.utf8)
        guard (tokenLengthMin...tokenLengthMax).contains(bytes.count), bytes.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            return "must be \(tokenLengthMin) to \(tokenLengthMax) visible ASCII characters"
        }
        let lowered = token.lowercased()
        if let word = placeholderWords.first(where: { lowered.contains($0) }) {
            return "looks like a placeholder (it contains \"\(word)\"), not a generated token"
        }
        let distinct = Set(bytes).count
        guard distinct >= distinctCharactersMin else {
            return "uses only \(distinct) different characters (at least \(distinctCharactersMin) are needed)"
        }
        let bits = Double(bytes.count) * log2(Double(distinct))
        guard bits >= estimatedBitsMin else {
            return "is too weak: about \(Int(bits)) bits (length × log2 of its \(distinct) different characters) "
                + "where at least \(Int(estimatedBitsMin)) are needed"
        }
        if let period = (1...(bytes.count / 2)).first(where: { period in (period..<bytes.count).allSatisfy { bytes[$0] == bytes[$0 - period] } }) {
            return "repeats a block of \(period) characters"
        }
        let steps = zip(bytes, bytes.dropFirst()).count { abs(Int($0) - Int($1)) <= 1 }
        guard steps * 3 <= (bytes.count - 1) * 2 else {
            return "is mostly repeated or consecutive characters (\(steps) of \(bytes.count - 1) neighbouring pairs, like aaaa or abcd)"
        }
        return nil
    }

    /// A fresh random token (192 bits from the system's CSPRNG, hex), for the demo, the benchmark and tests.
    /// Drawn again in the (about 10⁻¹³) case the start-up rule would refuse it, so it always passes.
    public static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        while true {
            let token = (0..<24).map { _ in
                let byte = UInt8.random(in: 0...255, using: &generator)
                return String(byte, radix: 16).count == 1 ? "0" + String(byte, radix: 16) : String(byte, radix: 16)
            }.joined()
            if weakness(of: token) == nil { return token }
        }
    }

    /// Throws 401 when the request carries no bearer token, 403 when it does not grant `role`.
    /// Runs before the body is read, so a refused request costs nothing and writes nothing.
    ///
    /// `acceptingBasic` (the dashboard, which a browser opens): HTTP Basic credentials are accepted too,
    /// the token as the password (any user name), and a request without them is challenged with
    /// `WWW-Authenticate: Basic`, so the browser asks for them; a wrong password is challenged again.
    func authorize(_ request: Request, as role: Role, acceptingBasic: Bool = false) throws(APIError) {
        guard case .tokens(let producer, let admin) = self else { return }
        guard let header = request.headers[.authorization] else {
            if acceptingBasic { throw APIError.basicChallenge("this page needs the admin token as the password of HTTP Basic credentials") }
            throw APIError.unauthorized("this request needs an Authorization: Bearer <token> header")
        }
        if acceptingBasic, header.prefix(Self.basicScheme.count).lowercased() == Self.basicScheme {
            let password = Self.basicPassword(header.dropFirst(Self.basicScheme.count))
            let granted = role == .admin ? [admin] : [admin, producer]
            // Every comparison runs, so timing does not tell which token was close.
            let matches = granted.map { Self.constantTimeEquals(password ?? [], $0.utf8) }
            guard matches.contains(true) else { throw APIError.basicChallenge("the password must be the admin token") }
            return
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

    static let basicScheme = "basic "
    /// Longest base64 Basic credentials read: a user name and a token of ``tokenLengthMax`` each.
    static let basicCredentialsLengthMax = 4 * ((2 * tokenLengthMax + 1 + 2) / 3)

    /// The password of Basic credentials (RFC 7617: base64 of `user:password`, the user without a colon);
    /// nil when they are not that. Longer credentials than a user name and a token can make are refused
    /// before decoding.
    static func basicPassword(_ encoded: Substring) -> [UInt8]? {
        let encoded = encoded.trimmingCharacters(in: .whitespaces)
        guard encoded.utf8.count <= basicCredentialsLengthMax, let decoded = Data(base64Encoded: encoded),
            let colon = decoded.firstIndex(of: UInt8(ascii: ":"))
        else { return nil }
        return Array(decoded[decoded.index(after: colon)...])
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

    /// 401 with a Basic challenge: a browser asks its user for a name and password and sends them back.
    static func basicChallenge(_ message: String) -> APIError {
        APIError(.unauthorized, "unauthorized", message, headers: [.wwwAuthenticate: #"Basic realm="boxoffice dashboard", charset="UTF-8""#])
    }
}
