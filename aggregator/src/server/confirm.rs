//! A person asked before a change, over MCP. Which way depends on the
//! client:
//!
//! - **2026-07-28 clients** that declare elicitation: the first `tools/call`
//!   of an operation answers `InputRequiredResult` — one elicitation form
//!   (`confirm: boolean`) whose message says what will change, and a sealed
//!   `requestState`. The client asks its user and calls again with the
//!   answer in `inputResponses` and the state; the operation runs only on a
//!   yes, and only for the same tool, arguments and caller the state was
//!   sealed for (HMAC, 10 minutes, each state used once).
//! - **Older clients** that declare elicitation: the server asks during
//!   the call (`elicitation/create`) and waits up to five minutes.
//! - **Clients that can be asked nothing**: `[mutations] confirm_fallback`
//!   decides (tools.rs).
//!
//! The audit line says which it was.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::RoleServer;
use rmcp::model::{
    ElicitRequest, ElicitRequestParams, ElicitResult, ElicitationAction, ElicitationSchema,
    InputRequest, InputRequests, InputRequiredResult, InputResponses, RequestStateCodec,
    SealOptions,
};
use rmcp::service::{ElicitationError, Peer};
use serde_json::{Map, Value};

use crate::tools::{ConfirmFuture, Confirmation, Confirmer, ToolError, declined};

/// The key of the one input request, in `inputRequests`/`inputResponses`.
pub const CONFIRM_KEY: &str = "confirm_change";
/// How long a pending confirmation stays valid.
const STATE_TTL: Duration = Duration::from_secs(600);
/// How long an older client's user has to answer.
const ELICIT_WAIT: Duration = Duration::from_secs(300);
pub use crate::tools::PENDING_RULE;

/// The form an older client shows its user.
#[derive(Debug, serde::Deserialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
struct Confirm {
    /// Yes: make this change.
    confirm: bool,
}
rmcp::elicit_safe!(Confirm);

/// Asks through `elicitation/create` (clients before 2026-07-28).
pub struct Elicit {
    /// The client.
    pub peer: Peer<RoleServer>,
}

impl Confirmer for Elicit {
    fn confirm<'a>(&'a self, question: &'a str) -> ConfirmFuture<'a> {
        Box::pin(async move {
            match self
                .peer
                .elicit_with_timeout::<Confirm>(question, Some(ELICIT_WAIT))
                .await
            {
                Ok(Some(Confirm { confirm: true })) => Ok(Some(Confirmation::Elicitation)),
                Ok(_) => Err(declined("the user did not tick confirm")),
                Err(ElicitationError::UserDeclined) => Err(declined("the user declined")),
                Err(ElicitationError::UserCancelled) => Err(declined("the user cancelled")),
                Err(ElicitationError::CapabilityNotSupported) => Ok(None),
                Err(e) => Err(declined(&format!("the client gave no answer ({e})"))),
            }
        })
    }
}

/// Pending confirmations: the sealing key and the states already used.
pub struct Pending {
    codec: RequestStateCodec,
    used: Mutex<HashMap<String, Instant>>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pending(<key>)")
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct State {
    nonce: String,
}

/// Binds a state to one call: tool, arguments and caller.
fn bound_to(tool: &str, args: &Map<String, Value>, caller: &str) -> Vec<u8> {
    format!("{tool}\n{}\n{caller}", Value::Object(args.clone())).into_bytes()
}

fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    // Without randomness a nonce is still unique per process (the clock).
    if getrandom::fill(&mut b).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        b = t.to_le_bytes().to_vec();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Pending {
    /// A fresh key (a restart forgets the pending confirmations: their
    /// clients ask again).
    pub fn new() -> Self {
        let mut key = [0u8; 32];
        let codec = match getrandom::fill(&mut key) {
            Ok(()) => RequestStateCodec::try_new(key.to_vec()).ok(),
            Err(_) => None,
        };
        Self {
            // try_new only refuses keys under 32 bytes.
            codec: codec
                .unwrap_or_else(|| RequestStateCodec::new_unchecked(random_hex(32).into_bytes())),
            used: Mutex::new(HashMap::new()),
        }
    }

    /// The input request for `question`, with its sealed state.
    pub fn ask(
        &self,
        question: &str,
        tool: &str,
        args: &Map<String, Value>,
        caller: &str,
    ) -> Result<InputRequiredResult, ToolError> {
        let internal = |e: String| {
            ToolError::new(
                crate::tools::ErrorCode::AgentError,
                format!("the confirmation could not be prepared: {e}"),
                "this is a labscope bug worth reporting",
            )
        };
        let schema = ElicitationSchema::builder()
            .required_bool("confirm")
            .build()
            .map_err(|e| internal(e.to_string()))?;
        let mut requests = InputRequests::new();
        requests.insert(
            CONFIRM_KEY.into(),
            InputRequest::Elicitation(ElicitRequest::new(
                ElicitRequestParams::FormElicitationParams {
                    meta: None,
                    message: question.to_string(),
                    requested_schema: schema,
                },
            )),
        );
        let state = self
            .codec
            .seal_json_with(
                &State {
                    nonce: random_hex(16),
                },
                &SealOptions::new()
                    .associated_data(&bound_to(tool, args, caller))
                    .ttl(STATE_TTL),
            )
            .map_err(|e| internal(e.to_string()))?;
        Ok(InputRequiredResult::new(Some(requests), Some(state)))
    }

    /// The person's answer on the retry: `Ok(true)` for yes. The state must
    /// open for this tool, arguments and caller, be unexpired and unused.
    pub fn answer(
        &self,
        state: &str,
        responses: Option<&InputResponses>,
        tool: &str,
        args: &Map<String, Value>,
        caller: &str,
    ) -> Result<bool, ToolError> {
        let invalid = || {
            ToolError::invalid(
                "requestState",
                "not a confirmation this server asked for this call, or expired or already used",
            )
        };
        let opened: State = self
            .codec
            .open_json_with(state, &bound_to(tool, args, caller))
            .map_err(|_| invalid())?;
        {
            let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
            used.retain(|_, at| at.elapsed() < STATE_TTL);
            if used.insert(opened.nonce, Instant::now()).is_some() {
                return Err(invalid());
            }
        }
        let answer: Option<ElicitResult> = responses
            .and_then(|r| r.get(CONFIRM_KEY))
            .and_then(|v| serde_json::from_value(v.clone()).ok());
        Ok(answer.is_some_and(|a| {
            a.action == ElicitationAction::Accept
                && a.content
                    .as_ref()
                    .and_then(|c| c.get("confirm"))
                    .and_then(Value::as_bool)
                    == Some(true)
        }))
    }
}

impl Default for Pending {
    fn default() -> Self {
        Self::new()
    }
}

/// The first round of a 2026-07-28 call: records the question and stops the
/// call before anything changes.
#[derive(Default)]
pub struct AskFirst {
    /// The question, once asked.
    pub question: Mutex<Option<String>>,
}

impl Confirmer for AskFirst {
    fn confirm<'a>(&'a self, question: &'a str) -> ConfirmFuture<'a> {
        Box::pin(async move {
            *self.question.lock().unwrap_or_else(|p| p.into_inner()) = Some(question.to_string());
            Err(ToolError {
                code: crate::tools::ErrorCode::Refused,
                message: "waiting for the user's confirmation".into(),
                hint: "answer the input request and call again with its requestState".into(),
                rule: Some(PENDING_RULE.into()),
            })
        })
    }
}

/// The second round: the person's answer, already read.
pub struct Answered {
    /// Yes.
    pub yes: bool,
}

impl Confirmer for Answered {
    fn confirm<'a>(&'a self, _question: &'a str) -> ConfirmFuture<'a> {
        Box::pin(async move {
            if self.yes {
                Ok(Some(Confirmation::InputRequest))
            } else {
                Err(declined("the user did not confirm"))
            }
        })
    }
}

/// Shared by every session of a server.
pub type SharedPending = Arc<Pending>;
