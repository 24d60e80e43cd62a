//! The `gmr` binary: parse the command line, run the command, turn the
//! result into one `gmr: …` line and an exit status (docs/contracts.md §7).

use gmr::ExitCode;

fn main() {
    let cli = match gmr::parse(std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version to stdout (exit 0) and errors to
            // stderr (exit 2, our usage status).
            let _ = e.print();
            std::process::exit(if e.use_stderr() {
                ExitCode::Usage as i32
            } else {
                0
            });
        }
    };
    let code = match gmr::run(cli) {
        Ok(()) => ExitCode::Success,
        Err(e) => {
            eprintln!("gmr: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code as i32);
}
