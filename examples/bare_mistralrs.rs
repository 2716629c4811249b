//! A bare mistral.rs decode loop, for comparing against promptloom's local backend with the
//! same settings: greedy (the same sampling parameters, from `engine_sampling`), same
//! messages, same max tokens.
//!
//! cargo run --release --example bare_mistralrs -- MODEL.gguf [max_tokens] [prompt]

use std::time::Instant;

use mistralrs::{RequestBuilder, Response, TextMessageRole};
use promptloom::engine_api::{engine_sampling, gguf_builder};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = std::path::PathBuf::from(args.next().ok_or_else(|| {
        anyhow::anyhow!("usage: bare_mistralrs MODEL.gguf [max_tokens] [prompt]")
    })?);
    let max_tokens: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(256);
    let prompt = args
        .next()
        .unwrap_or_else(|| "Write a long story about a dragon who learns to cook.".into());
    let model = gguf_builder(&path)
        .map_err(|e| anyhow::anyhow!(e))?
        .build()
        .await?;
    for run in 0..3 {
        let params = engine_sampling(Some(max_tokens));
        let req = RequestBuilder::new()
            .add_message(TextMessageRole::User, &prompt)
            .set_sampling(params);
        let t0 = Instant::now();
        let mut first = None;
        let mut last = t0;
        let mut n = 0u64;
        let mut stream = model.stream_chat_request(req).await?;
        while let Some(r) = stream.next().await {
            match r {
                Response::Chunk(c) => {
                    let text: usize = c
                        .choices
                        .iter()
                        .filter_map(|c| c.delta.content.as_ref())
                        .map(|t| t.len())
                        .sum();
                    if text > 0 {
                        let now = Instant::now();
                        first.get_or_insert(now);
                        last = now;
                        n += 1;
                    }
                    if let Some(u) = c.usage {
                        n = u.completion_tokens as u64;
                    }
                    if c.choices.iter().any(|c| c.finish_reason.is_some()) {
                        break;
                    }
                }
                Response::Done(_) => break,
                _ => anyhow::bail!("engine error"),
            }
        }
        let first = first.unwrap_or(t0);
        let decode = (n.saturating_sub(1)) as f64 / (last - first).as_secs_f64().max(1e-9);
        println!(
            "run {run}: {n} tokens, ttft {} ms, decode {decode:.1} tok/s",
            (first - t0).as_millis()
        );
    }
    Ok(())
}
