use std::process::ExitCode;

use my_modules as _;

fn main() -> ExitCode {
    listener_runtime::main()
}
