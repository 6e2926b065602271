//! The demo listener: the runtime's command line with the example modules linked in.

use std::process::ExitCode;

// Without this the example crate is not linked and no module is registered.
use examples as _;

fn main() -> ExitCode {
    listener_runtime::main()
}
