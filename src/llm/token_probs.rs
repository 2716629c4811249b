//! Token probabilities on the wire: the `{token, logprob, top_logprobs: [...]}` entries that
//! OpenAI-compatible servers (OpenAI, llama-server, vLLM) put under
//! `choices[0].logprobs.content` and Ollama under `logprobs`, read into
//! [`TokenLogprob`]s. Entries that are not objects with a string token and a numeric
//! logprob are skipped; everything read is clamped into a probability.

use serde_json::Value;

use super::TokenLogprob;
use crate::chat::MAX_TOP_LOGPROBS;

/// The entries of a `logprobs` array; empty when `v` is not one.
pub(crate) fn parse_entries(v: Option<&Value>) -> Vec<TokenLogprob> {
    let Some(items) = v.and_then(Value::as_array) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|e| {
            let (text, lp) = token_of(e)?;
            let top = e
                .get("top_logprobs")
                .and_then(Value::as_array)
                .map(|alts| {
                    alts.iter()
                        .filter_map(token_of)
                        .take(MAX_TOP_LOGPROBS)
                        .collect()
                })
                .unwrap_or_default();
            Some(TokenLogprob::new(text, lp, top))
        })
        .collect()
}

fn token_of(e: &Value) -> Option<(String, f32)> {
    let text = e.get("token").and_then(Value::as_str)?;
    let lp = e.get("logprob").and_then(Value::as_f64)?;
    Some((text.to_string(), lp as f32))
}

/// How many alternatives to ask a server for: what the request wants, at most the wire limit.
pub(crate) fn top_n(requested: usize) -> usize {
    requested.min(MAX_TOP_LOGPROBS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn entries_with_alternatives_sorted_and_bad_ones_skipped() {
        let v = json!([
            {"token": "Lon", "logprob": -0.2, "bytes": [76, 111, 110],
             "top_logprobs": [{"token": "Par", "logprob": -2.0}, {"token": "Lon", "logprob": -0.2}, {"token": 5}]},
            {"token": "don", "logprob": 0.0001},
            {"logprob": -1.0},
            "junk"
        ]);
        let t = parse_entries(Some(&v));
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].text, "Lon");
        assert_eq!(t[0].top[0].0, "Lon");
        assert_eq!(t[0].top[1].0, "Par");
        assert_eq!(t[1].logprob, 0.0);
        assert!(parse_entries(Some(&json!({"content": null}))).is_empty());
        assert!(parse_entries(None).is_empty());
    }
}
