use std::process::ExitCode;

use my_modules as _;

// The runtime sets no global allocator; the listener is measured with mimalloc (it
// allocates and frees an entry's values for every transaction).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    listener_runtime::main()
}
