//! The `gradlab` binary: parses the command line and hands over to the library.

// The training step allocates and frees the same buffer sizes every step; mimalloc recycles
// them without the page faults glibc's per-thread arenas incur on the trainer thread.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    gradlab::cli::main()
}
