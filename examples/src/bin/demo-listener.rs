//! The demo listener: the runtime's command line with the example modules linked in.

use std::process::ExitCode;

// Without this the example crate is not linked and no module is registered.
use examples as _;

// The runtime sets no global allocator; the listener is measured with mimalloc (it
// allocates and frees an entry's values for every transaction).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    listener_runtime::main()
}
