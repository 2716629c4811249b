//! Continuing a partial answer on the local engine (a branch from a token).
//!
//! A request whose last message is an assistant message asks for that message to be
//! continued, not answered. A chat request can't say that to mistral.rs (its template always
//! opens a new assistant turn after the messages), so the prompt is built as tokens: the
//! chat template of the messages before it, with the generation prompt, exactly as a chat
//! request would read them, then the partial answer's tokens. Sent as a completion from
//! tokens, the engine's prefix cache finds the KV of the parent answer's prompt (same
//! tokens), so only the partial answer is read before the first new token.

use std::sync::Arc;

use either::Either;
use image::DynamicImage;
use indexmap::IndexMap;
use mistralrs::{
    CustomLogitsProcessor, MessageContent, Model, RequestBuilder, RequestLike, SamplingParams,
    TextMessageRole, TextMessages, Tool, ToolChoice,
};
use mistralrs_core::{Constraint, RequestMessage, WebSearchOptions};

use super::{ChatRequest, Role};

/// The request as mistral.rs takes it: `tokens` replace the builder's messages; everything
/// else (sampling, processors, logprobs) is the builder's.
pub(super) struct Continuation {
    pub inner: RequestBuilder,
    pub tokens: Vec<u32>,
}

fn role(r: Role) -> TextMessageRole {
    match r {
        Role::System => TextMessageRole::System,
        Role::User => TextMessageRole::User,
        Role::Assistant => TextMessageRole::Assistant,
    }
}

/// The partial answer to continue, when the request's last message is one.
pub(super) fn partial(req: &ChatRequest) -> Option<&str> {
    req.messages
        .last()
        .filter(|m| m.role == Role::Assistant && req.messages.len() > 1)
        .map(|m| m.content.as_str())
}

/// The prompt tokens for continuing `req`'s last (assistant) message.
pub(super) async fn prompt_tokens(model: &Model, req: &ChatRequest) -> Result<Vec<u32>, String> {
    let (last, before) = req
        .messages
        .split_last()
        .ok_or("a continuation needs messages")?;
    let mut msgs = TextMessages::new();
    for m in before {
        msgs = msgs.add_message(role(m.role), &m.content);
    }
    let mut tokens = model
        .tokenize(Either::Left(msgs), None, true, true, None)
        .await
        .map_err(|e| format!("mistral.rs could not apply the chat template: {e}"))?;
    if !last.content.is_empty() {
        let answer = model
            .tokenize(
                Either::Right(last.content.clone()),
                None,
                false,
                false,
                None,
            )
            .await
            .map_err(|e| format!("mistral.rs could not tokenize the partial answer: {e}"))?;
        tokens.extend(answer);
    }
    Ok(tokens)
}

impl RequestLike for Continuation {
    fn messages_ref(&self) -> &[IndexMap<String, MessageContent>] {
        self.inner.messages_ref()
    }
    fn images_ref(&self) -> &[DynamicImage] {
        self.inner.images_ref()
    }
    fn take_messages(&mut self) -> RequestMessage {
        RequestMessage::CompletionTokens(std::mem::take(&mut self.tokens))
    }
    fn take_logits_processors(&mut self) -> Option<Vec<Arc<dyn CustomLogitsProcessor>>> {
        self.inner.take_logits_processors()
    }
    fn take_adapters(&mut self) -> Option<Vec<String>> {
        self.inner.take_adapters()
    }
    fn return_logprobs(&self) -> bool {
        RequestLike::return_logprobs(&self.inner)
    }
    fn enable_search(&self) -> Option<bool> {
        self.inner.enable_search()
    }
    fn take_constraint(&mut self) -> Constraint {
        self.inner.take_constraint()
    }
    fn take_tools(&mut self) -> Option<(Vec<Tool>, ToolChoice)> {
        self.inner.take_tools()
    }
    fn take_sampling_params(&mut self) -> SamplingParams {
        self.inner.take_sampling_params()
    }
    fn take_web_search_options(&mut self) -> Option<WebSearchOptions> {
        self.inner.take_web_search_options()
    }
}
