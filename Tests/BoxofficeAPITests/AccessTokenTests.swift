import Foundation
import Testing

@testable import BoxofficeAPI

/// The start-up rule for bearer tokens: generated tokens pass, placeholders and patterned ones do not.
@Suite("Access token rule")
struct AccessTokenTests {
    /// The message `serve` would stop with for `token` as the producer token, or nil if it is accepted.
    func refusal(_ token: String) -> String? {
        do {
            _ = try AccessControl.validated(producer: token, admin: AccessControl.randomToken())
            return nil
        } catch {
            return error.description
        }
    }

    @Test("randomToken always passes (100,000 draws), and is 48 hex digits")
    func randomTokensPass() {
        var refused: [String] = []
        for _ in 0..<100_000 {
            let token = AccessControl.randomToken()
            #expect(token.utf8.count == 48 && token.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) })
            if AccessControl.weakness(of: token) != nil { refused.append(token) }
        }
        #expect(refused.isEmpty, "refused generated tokens: \(refused.prefix(5))")
    }

    @Test("Raw random tokens pass without redrawing: openssl rand -hex 16/24/32 (30,000 each), -base64 24/32")
    func otherGeneratorsPass() {
        var generator = SystemRandomNumberGenerator()
        func bytes(_ count: Int) -> Data { Data((0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }) }
        let digits = Array("0123456789abcdef".utf8)
        func hex(_ count: Int) -> String {
            String(decoding: bytes(count).flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] }, as: UTF8.self)
        }
        var refused: [String] = []
        for _ in 0..<30_000 {
            for count in [16, 24, 32] {
                let token = hex(count)
                if AccessControl.weakness(of: token) != nil { refused.append(token) }
            }
        }
        #expect(refused.isEmpty, "refused random hex tokens: \(refused.prefix(5))")
        for _ in 0..<2_000 {
            for count in [24, 32] {
                let base64 = bytes(count).base64EncodedString()
                // A base64 token may contain a placeholder word by chance (a few in a million): draw again then.
                let lowered = base64.lowercased()
                if AccessControl.placeholderWords.contains(where: { lowered.contains($0) }) { continue }
                #expect(AccessControl.weakness(of: base64) == nil, "\(base64)")
            }
        }
    }

    @Test("The example files' placeholders and common placeholder shapes are refused, saying how to generate one")
    func placeholdersRefused() throws {
        let placeholders = [
            "REPLACE-with-openssl-rand-hex-24", "REPLACE-with-another-openssl-rand-hex-24",
            "CHANGE-ME-producer-token-at-least-16-chars", "changeme-changeme-changeme",
            "ChangeMe7Kq2XvN9wLm4RtZ8", "your_secret_here_1234567890", "my-api-token-0f3a9c2e7b1d",
            "PLACEHOLDER-0f3a9c2e7b1d5e8a", "example-0f3a9c2e7b1d5e8a4c", "xxxxxxxxxxxxxxxxxxxxxxxx",
            "p4ssw0rd-password-0f3a9c2e7b1d", "dummy-0f3a9c2e7b1d5e8a4c", "FIXME-0f3a9c2e7b1d5e8a4c",
            "sample-0f3a9c2e7b1d5e8a4c",
        ]
        for token in placeholders {
            let message = try #require(refusal(token), "accepted: \(token)")
            #expect(message.contains("BOXOFFICE_PRODUCER_TOKEN") && message.contains("openssl rand -hex 24"), "\(message)")
            if token.hasPrefix("REPLACE") || token.hasPrefix("CHANGE") {
                #expect(message.contains("placeholder"), "\(message)")
            }
        }
        // The example files ship exactly these placeholders: they must stop the server at start.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        for file in ["deploy/k8s/secret.example.yaml", "workers/env.example"] {
            let text = try String(contentsOf: root.appendingPathComponent(file), encoding: .utf8)
            let values = text.split(separator: "\n").filter { $0.contains("_TOKEN") && !$0.hasPrefix("#") && !$0.contains("--from-literal") }
                .compactMap { line -> String? in
                    guard let separator = line.firstIndex(where: { $0 == ":" || $0 == "=" }) else { return nil }
                    return line[line.index(after: separator)...].trimmingCharacters(in: CharacterSet(charactersIn: " \""))
                }
            #expect(values.count == 2, "\(file): \(values)")
            for value in values { #expect(refusal(value)?.contains("placeholder") == true, "\(file): \(value) accepted") }
        }
    }

    @Test("Low-entropy tokens are refused, with the rule in the message")
    func lowEntropyRefused() throws {
        let cases: [(String, String)] = [
            ("aaaaaaaaaaaaaaaaaaaaaaaa", "different characters"),
            ("abababababababababababababababab", "different characters"),
            ("123412341234123412341234", "different characters"),
            ("0123456789012345", "bits"),  // 10 different, 16 × log2(10) ≈ 53 bits
            ("abcdefghijklmnopqrstuvwxyz", "consecutive"),
            ("zyxwvutsrqponmlkjihgfedcba0987654321", "consecutive"),
            ("aabbccddeeffgghhiijjkkllmmnn", "consecutive"),
            ("13579bdf13579bdf13579bdf", "repeats a block of 8"),
            ("Kq2XvN9wLm4RKq2XvN9wLm4R", "repeats a block of 12"),
            ("short", "visible ASCII"),
            ("has a space in the middle 0f3a9c2e", "visible ASCII"),
        ]
        for (token, rule) in cases {
            let message = try #require(refusal(token), "accepted: \(token)")
            #expect(message.contains(rule) && message.contains("openssl rand -hex 24"), "\(token): \(message)")
        }
        // The boundary of the estimate: 16 different characters once each is 16 × 4 = 64 bits, enough.
        #expect(AccessControl.weakness(of: "q7Zk2Wm9Xr4Tn8Vb") == nil)
        #expect(AccessControl.weakness(of: "q7Zk2Wm9Xr4Tn8Vq")?.contains("bits") == true, "15 different: 62.5 bits")
    }

    @Test("Producer and admin must differ; a good pair is read from the environment")
    func pairRules() throws {
        let token = AccessControl.randomToken()
        #expect(throws: AccessError.self) { try AccessControl.validated(producer: token, admin: token) }
        let environment = ["BOXOFFICE_PRODUCER_TOKEN": AccessControl.randomToken(), "BOXOFFICE_ADMIN_TOKEN": AccessControl.randomToken()]
        guard case .tokens(let producer, let admin)? = try AccessControl.fromEnvironment(environment) else {
            Issue.record("a generated pair was refused")
            return
        }
        #expect(producer == environment["BOXOFFICE_PRODUCER_TOKEN"] && admin == environment["BOXOFFICE_ADMIN_TOKEN"])
    }

    @Test("Basic credentials: the password is what follows the first colon; no colon, bad base64 or overlong credentials give none")
    func basicPassword() {
        func encoded(_ text: String) -> Substring { Substring(Data(text.utf8).base64EncodedString()) }
        let token = AccessControl.randomToken()
        #expect(AccessControl.basicPassword(encoded("admin:\(token)")) == Array(token.utf8))
        #expect(AccessControl.basicPassword(encoded(":\(token)")) == Array(token.utf8), "any user name, the empty one too")
        #expect(AccessControl.basicPassword(encoded("admin:a:b")) == Array("a:b".utf8), "a password may hold colons")
        #expect(AccessControl.basicPassword(" " + encoded("admin:x") + " ") == Array("x".utf8))
        #expect(AccessControl.basicPassword(encoded("no colon")) == nil)
        #expect(AccessControl.basicPassword("%%%") == nil)
        let longest = String(repeating: "u", count: AccessControl.tokenLengthMax) + ":" + String(repeating: "p", count: AccessControl.tokenLengthMax)
        #expect(AccessControl.basicPassword(encoded(longest))?.count == AccessControl.tokenLengthMax)
        #expect(
            AccessControl.basicPassword(encoded("uuu" + longest)) == nil,
            "past a user name and a token of the longest length (base64 counts in 3 bytes)")
    }
}
