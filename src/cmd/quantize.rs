//! `promptloom quantize`: re-quantize a GGUF file and compare its quality with the original.

use std::path::PathBuf;
use std::process::ExitCode;

/// `promptloom quantize` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct QuantizeArgs {
    pub input: PathBuf,
    pub output: PathBuf,
    #[arg(long, value_enum)]
    pub to: crate::quantize::Target,
    /// Replace OUTPUT if it exists.
    #[arg(long)]
    pub force: bool,
    /// Skip the quality check (it loads both models and takes a few seconds).
    #[arg(long, conflicts_with = "check_only")]
    pub no_check: bool,
    /// Write nothing: compare an existing OUTPUT with INPUT.
    #[arg(long)]
    pub check_only: bool,
}

pub(crate) async fn run(args: QuantizeArgs) -> anyhow::Result<ExitCode> {
    let QuantizeArgs {
        input,
        output,
        to,
        force,
        no_check,
        check_only,
    } = args;
    use std::io::IsTerminal;
    let (input, output) = (input.as_path(), output.as_path());
    if check_only {
        let q = crate::quantize::quality(input, output).await?;
        println!("{}", q.line());
        return Ok(ExitCode::SUCCESS);
    }
    let (i, o) = (input.to_path_buf(), output.to_path_buf());
    let tty = std::io::stderr().is_terminal();
    let report = tokio::task::spawn_blocking(move || {
        crate::quantize::quantize(&i, &o, to, force, &mut |done, total, name| {
            if tty && (done % 16 == 0 || done == total) {
                eprint!("\r\x1b[Kquantizing {done}/{total} {name}");
            }
        })
    })
    .await??;
    if tty {
        eprintln!();
    }
    for line in report.lines(to) {
        println!("{line}");
    }
    println!("wrote {}", output.display());
    if !no_check {
        let q = crate::quantize::quality(input, output).await?;
        println!("{}", q.line());
    }
    Ok(ExitCode::SUCCESS)
}
