//! The binary the integration tests run as separate processes: the runtime's command line
//! with the example modules linked in.

use examples as _;

fn main() -> std::process::ExitCode {
    listener_runtime::main()
}
