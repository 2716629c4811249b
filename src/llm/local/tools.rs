//! Tools for the in-process model: the offered tools and the tool turns of a conversation in
//! mistral.rs's types (`RequestBuilder::set_tools`, `set_tool_choice`,
//! `add_message_with_tool_call`, `add_tool_message`), and its parsed calls back in ours.
//!
//! mistral.rs renders the tools through the model's chat template and parses calls out of the
//! generated text (JSON `{"name": …, "arguments": …}` and the model families' own markers). A
//! model whose template has no tool section (SmolLM2's) is offered them all the same and
//! simply never calls.

use std::collections::HashMap;

use mistralrs::{
    CalledFunction, Function, RequestBuilder, TextMessageRole, Tool, ToolCallResponse,
    ToolCallType, ToolChoice as EngineChoice, ToolType,
};

use crate::chat::{ChatMessage, Role, ToolCall, ToolChoice, ToolSpec};

/// Our tool as mistral.rs's: the schema's top-level keys become its parameters map.
pub(super) fn engine_tool(spec: &ToolSpec) -> Tool {
    let parameters: Option<HashMap<String, serde_json::Value>> = spec
        .parameters
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
    Tool {
        tp: ToolType::Function,
        function: Function {
            description: (!spec.description.is_empty()).then(|| spec.description.clone()),
            name: spec.name.clone(),
            parameters,
        },
    }
}

/// The tool choice. mistral.rs 0.8.1 has no "required": it is offered as `auto` (the tool
/// loop still records a turn that called nothing), and a choice naming a tool that is not
/// offered falls back to `auto` too.
pub(super) fn engine_choice(choice: &ToolChoice, specs: &[ToolSpec]) -> EngineChoice {
    match choice {
        ToolChoice::None => EngineChoice::None,
        ToolChoice::Auto | ToolChoice::Required => EngineChoice::Auto,
        ToolChoice::Tool(name) => specs
            .iter()
            .find(|s| s.name == *name)
            .map_or(EngineChoice::Auto, |s| EngineChoice::Tool(engine_tool(s))),
    }
}

/// One message onto the builder: a plain turn, an assistant turn with its calls, or a tool
/// result answering a call.
pub(super) fn add_message(rb: RequestBuilder, m: &ChatMessage) -> RequestBuilder {
    let role = match m.role {
        Role::System => TextMessageRole::System,
        Role::User => TextMessageRole::User,
        Role::Assistant => TextMessageRole::Assistant,
    };
    if let Some(r) = &m.tool_result {
        return rb.add_tool_message(&m.content, &r.call_id);
    }
    if !m.tool_calls.is_empty() && m.role == Role::Assistant {
        let calls = m
            .tool_calls
            .iter()
            .enumerate()
            .map(|(index, c)| ToolCallResponse {
                index,
                id: c.id.clone(),
                tp: ToolCallType::Function,
                function: CalledFunction {
                    name: c.name.clone(),
                    arguments: c.arguments.clone(),
                },
            })
            .collect();
        return rb.add_message_with_tool_call(role, &m.content, calls);
    }
    rb.add_message(role, &m.content)
}

/// A call the engine parsed out of the model's text, as ours. An empty id (some parsers
/// leave it) gets `call_N` by its index, as the HTTP backends do.
pub(super) fn call_of(r: &ToolCallResponse) -> ToolCall {
    ToolCall {
        id: if r.id.is_empty() {
            format!("call_{}", r.index)
        } else {
            r.id.clone()
        },
        name: r.function.name.clone(),
        arguments: r.function.arguments.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weather() -> ToolSpec {
        ToolSpec {
            name: "get_current_weather".into(),
            description: "Weather in a city".into(),
            parameters: serde_json::json!({
                "type": "object",
                "properties": {"location": {"type": "string"}},
                "required": ["location"]
            }),
        }
    }

    /// The tool reaches mistral.rs as the OpenAI-style function it serialises to (what the
    /// chat template is rendered with).
    #[test]
    fn a_tool_becomes_an_openai_style_function() {
        let t = engine_tool(&weather());
        let v = serde_json::to_value(&t).unwrap();
        assert_eq!(v["type"], "function");
        assert_eq!(v["function"]["name"], "get_current_weather");
        assert_eq!(v["function"]["description"], "Weather in a city");
        assert_eq!(v["function"]["parameters"]["required"][0], "location");
        assert_eq!(
            v["function"]["parameters"]["properties"]["location"]["type"],
            "string"
        );
    }

    #[test]
    fn choices_map_and_unknown_or_required_fall_back_to_auto() {
        let specs = [weather()];
        let v = |c: &ToolChoice| serde_json::to_value(engine_choice(c, &specs)).unwrap();
        assert_eq!(v(&ToolChoice::None), "none");
        assert_eq!(v(&ToolChoice::Auto), "auto");
        assert_eq!(v(&ToolChoice::Required), "auto");
        assert_eq!(v(&ToolChoice::Tool("nope".into())), "auto");
        let named = v(&ToolChoice::Tool("get_current_weather".into()));
        assert_eq!(named["function"]["name"], "get_current_weather");
    }

    #[test]
    fn parsed_calls_come_back_with_an_id() {
        let r = ToolCallResponse {
            index: 2,
            id: String::new(),
            tp: ToolCallType::Function,
            function: CalledFunction {
                name: "get_current_weather".into(),
                arguments: "{\"location\":\"Boston\"}".into(),
            },
        };
        let c = call_of(&r);
        assert_eq!(c.id, "call_2");
        assert_eq!(c.name, "get_current_weather");
        assert_eq!(c.parsed_args().unwrap()["location"], "Boston");
    }

    /// The real model takes a conversation with a tool offered, an assistant turn that called
    /// it and the tool's result, and answers it (SmolLM2's template has no tool section, so
    /// this is the plumbing: the tool turns reach the engine and nothing fails).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_local_model_answers_after_a_tool_result() {
        use crate::llm::local::tests::{collect, model_path};
        use crate::llm::local::{LocalBackend, LocalOptions};
        use crate::llm::{Backend, ChatRequest, Sampling, StreamEvent};
        let backend = LocalBackend::new(model_path(), LocalOptions::default());
        let call = ToolCall {
            id: "call_0".into(),
            name: "get_current_weather".into(),
            arguments: "{\"location\": \"Boston\"}".into(),
        };
        let req = ChatRequest {
            messages: vec![
                ChatMessage::new(Role::User, "What is the weather in Boston?"),
                ChatMessage::assistant_calls("", vec![call.clone()]),
                ChatMessage::tool_result(
                    &call,
                    "{\"temperature\": 72, \"forecast\": [\"sunny\", \"windy\"]}",
                ),
            ],
            sampling: Sampling {
                max_tokens: Some(24),
                tools: vec![weather()],
                tool_choice: Some(ToolChoice::Auto),
                ..Default::default()
            },
        };
        let (text, end) = collect(&mut backend.start(req)).await;
        assert!(
            matches!(end, Some(StreamEvent::Finished(_))),
            "{end:?}: {text}"
        );
        assert!(!text.trim().is_empty(), "no answer");
    }
}
