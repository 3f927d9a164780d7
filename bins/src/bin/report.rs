//! copyperf report: turns a results folder written by the sweep (records.jsonl,
//! meta.json) into plots and a written report.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Write plots/*.svg and report.md for a copyperf results folder.
///
/// Reads DIR/records.jsonl (one record per line) and DIR/meta.json (optional).
///
/// Exit codes: 0 success, 1 failure (unreadable folder, unwritable files), 2 bad flags.
#[derive(Debug, Parser)]
#[command(name = "report", version, max_term_width = 100)]
struct Args {
    /// The results folder.
    #[arg(value_name = "DIR")]
    dir: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match cli::report::write_report(&args.dir) {
        Ok(out) => {
            for w in &out.warnings {
                eprintln!("warning: {w}");
            }
            for f in &out.files {
                println!("wrote {}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
