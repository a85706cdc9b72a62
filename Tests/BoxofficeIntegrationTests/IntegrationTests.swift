import Testing

/// Every suite that touches PostgreSQL hangs below this one and runs one test at a time: they start
/// worker processes and a live server, and this machine has two cores.
@Suite(.serialized, .timeLimit(.minutes(10)))
struct IntegrationTests {}
