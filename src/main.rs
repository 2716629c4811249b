//! promptloom: wiring only. Everything lives in the library crate.

fn main() -> std::process::ExitCode {
    promptloom::main_entry()
}
