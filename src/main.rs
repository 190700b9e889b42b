//! The `agentgate` binary: parse the command line, run it, turn the outcome into an exit code.

/// jemalloc rather than the system allocator: a parked long-poll's connection holds 8 KiB
/// buffers it never writes into (hyper's write buffer, and the read buffer it uses only to notice
/// the client hanging up), and jemalloc leaves such memory untouched, so it costs address space
/// and not RSS. Its settings are built in (`.cargo/config.toml`): buffers of 8 KiB skip the thread
/// cache, and freed pages are returned at once. `_RJEM_MALLOC_CONF` overrides them at run time.
/// Measured by `cargo bench --bench broker -- polls`.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    agentgate::cli::main()
}
