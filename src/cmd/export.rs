//! `promptloom export`: its arguments, the checks on them, and where the text goes (stdout,
//! a file, or train/validation files). The formats themselves are `store::export`'s.

use std::path::PathBuf;

use crate::state::session::Session;
use crate::store::export::{export, sft, Format};

/// `promptloom export` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct ExportArgs {
    pub session: PathBuf,
    #[arg(long, value_enum)]
    pub format: Format,
    /// Write here instead of stdout.
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub filter: sft::Filter,
    /// sft and pairs: write train and validation files, this FRACTION of the cases in train
    /// (e.g. 0.9), split by a hash of the case name so no case is on both sides. Named
    /// after --out: data.jsonl gives data.train.jsonl and data.validation.jsonl.
    #[arg(long, value_name = "FRACTION", requires = "out")]
    pub split: Option<f64>,
    /// sft and pairs: leave out each row's `metadata` (session, node ids, case, variant,
    /// model) for consumers that refuse unknown keys.
    #[arg(long)]
    pub no_metadata: bool,
}

/// Run `promptloom export`.
pub(crate) fn run(args: ExportArgs) -> anyhow::Result<()> {
    let s = crate::store::journal::load_with_journal(&args.session)?;
    let training = matches!(args.format, Format::Sft | Format::Pairs);
    if !training && (args.filter.is_set() || args.split.is_some() || args.no_metadata) {
        anyhow::bail!(
            "--min-stars, --passing, --variant, --model, --rater, --split and --no-metadata apply to --format sft and pairs only"
        );
    }
    check_names(&s, &args)?;
    if !training {
        let text = export(&s, args.format)?;
        return write_or_print(args.out.as_ref(), &text);
    }
    let source = args.session.display().to_string();
    let meta = !args.no_metadata;
    let rows = match args.format {
        Format::Sft => sft::sft_rows(&s, &args.filter, &source, meta),
        _ => sft::pair_rows(&s, &args.filter, &source, meta),
    };
    let cases = |rows: &[sft::Row]| {
        rows.iter()
            .map(|r| r.case.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    };
    match (args.split, args.out.as_ref()) {
        (Some(frac), Some(out)) => {
            if !(frac > 0.0 && frac < 1.0) {
                anyhow::bail!("--split {frac}: give the share of cases for training, between 0 and 1 (e.g. 0.9)");
            }
            let (train, valid) = sft::split(rows, frac);
            let (tp, vp) = sft::split_paths(out);
            crate::store::write_atomic(&tp, sft::to_jsonl(&train)?.as_bytes())?;
            crate::store::write_atomic(&vp, sft::to_jsonl(&valid)?.as_bytes())?;
            eprintln!(
                "{} train row(s) from {} case(s) → {}; {} validation row(s) from {} case(s) → {}",
                train.len(),
                cases(&train),
                tp.display(),
                valid.len(),
                cases(&valid),
                vp.display()
            );
            Ok(())
        }
        _ => {
            eprintln!("{} row(s) from {} case(s)", rows.len(), cases(&rows));
            write_or_print(args.out.as_ref(), &sft::to_jsonl(&rows)?)
        }
    }
}

fn write_or_print(out: Option<&PathBuf>, text: &str) -> anyhow::Result<()> {
    match out {
        Some(p) => crate::store::write_atomic(p, text.as_bytes())?,
        None => print!("{text}"),
    }
    Ok(())
}

/// A filter naming a variant, model or rater the session doesn't have is a typo, not an
/// empty export.
fn check_names(s: &Session, args: &ExportArgs) -> anyhow::Result<()> {
    let f = &args.filter;
    let known = |what: &str, names: &[String], have: Vec<&str>| -> anyhow::Result<()> {
        for n in names {
            if !have.contains(&n.as_str()) {
                let mut have = have.clone();
                have.sort_unstable();
                have.dedup();
                anyhow::bail!(
                    "{}: no {what} named {n:?} in this session (it has: {})",
                    args.session.display(),
                    have.join(", ")
                );
            }
        }
        Ok(())
    };
    known(
        "variant",
        &f.variants,
        s.nodes.iter().map(|n| n.variant.as_str()).collect(),
    )?;
    known(
        "model",
        &f.models,
        s.nodes.iter().map(|n| n.model.as_str()).collect(),
    )?;
    if let Some(r) = &f.rater {
        known(
            "rater",
            std::slice::from_ref(r),
            s.ratings
                .iter()
                .map(|r| r.rater.as_str())
                .chain(s.votes.iter().map(|v| v.rater.as_str()))
                .collect(),
        )?;
    }
    Ok(())
}
