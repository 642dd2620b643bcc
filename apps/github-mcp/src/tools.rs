//! The MCP surface: `repo.tree` and `repo.read_file`, both read-only.
//!
//! A failure a model can act on (bad argument, not found, rate limited, GitHub down) is a tool
//! result with `isError: true` and a message saying what to do; never a crash or a hang.

use std::sync::Arc;
use std::time::Instant;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ErrorData, ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use tracing::{Instrument, Span};

use crate::AppState;
use crate::input;
use crate::read_file::{FileAnswer, read_file};

/// Arguments of `repo.tree`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct TreeArgs {
    /// Repository owner: the user or organization login, e.g. "rust-lang".
    pub owner: String,
    /// Repository name without the owner, e.g. "cargo".
    pub repo: String,
    /// Branch, tag or commit SHA to list. Omit for the repository's default branch.
    #[serde(rename = "ref", default)]
    pub git_ref: Option<String>,
    /// Only list entries under this directory (relative to the repository root, e.g. "src/bin"),
    /// or just this file. Omit for the whole repository.
    #[serde(default)]
    pub path: Option<String>,
}

/// Arguments of `repo.read_file`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ReadFileArgs {
    /// Repository owner: the user or organization login.
    pub owner: String,
    /// Repository name without the owner.
    pub repo: String,
    /// File path relative to the repository root, e.g. "src/main.rs" (no leading "/", no "..").
    pub path: String,
    /// Branch, tag or commit SHA. Omit for the repository's default branch.
    #[serde(rename = "ref", default)]
    pub git_ref: Option<String>,
    /// First line to return, counting from 1. Omit to start at the beginning.
    #[serde(default)]
    pub start_line: Option<u32>,
    /// Last line to return (inclusive). Omit to read to the end.
    #[serde(default)]
    pub end_line: Option<u32>,
}

const TREE_DESCRIPTION: &str = "List the files and directories of a GitHub repository recursively, \
leaving out everything the repository's own .gitignore files exclude (nested .gitignore files and \
negations follow git's rules). One line per entry: directories end in '/', files show their size \
in bytes. Use `path` to list one directory only. The first line names the tree's commit tree SHA \
and says how many entries were excluded; a WARNING line appears if GitHub truncated a very large tree.";

const READ_FILE_DESCRIPTION: &str = "Read a text file from a GitHub repository, whole or a line \
range (`start_line`/`end_line`, 1-based, inclusive). Returns the file's text and a second note \
with the line range shown, the total line count, the size and the blob SHA. Binary files are not \
dumped: only their size and SHA are reported. Files over the server's size limit are refused \
with their size. Use repo.tree first to find paths.";

#[derive(Clone)]
pub struct RepoServer {
    state: Arc<AppState>,
    tool_router: ToolRouter<RepoServer>,
}

impl RepoServer {
    pub fn new(state: Arc<AppState>) -> Self {
        RepoServer {
            state,
            tool_router: Self::tool_router(),
        }
    }

    fn finish(
        &self,
        tool: &str,
        started: Instant,
        span: &Span,
        result: Result<Vec<ContentBlock>, String>,
    ) -> CallToolResult {
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        if let Err(message) = &result {
            span.record("otel.status_code", "ERROR");
            span.record("otel.status_description", message.as_str());
        }
        match result {
            Ok(content) => {
                self.state.metrics.tool_call(tool, "ok");
                tracing::info!(tool, elapsed_ms, "tool call served");
                CallToolResult::success(content)
            }
            Err(message) => {
                self.state.metrics.tool_call(tool, "error");
                tracing::info!(tool, elapsed_ms, error = %message, "tool call failed");
                CallToolResult::error(vec![ContentBlock::text(message)])
            }
        }
    }
}

/// The server span of one tool call: the root of its trace (whatever rmcp's own tasks had
/// current), with the call's arguments as attributes; its children are the Valkey lookups and
/// the GitHub requests the call makes.
fn tool_span(tool: &'static str, owner: &str, repo: &str, git_ref: Option<&str>) -> Span {
    tracing::info_span!(
        parent: None,
        "tool call",
        otel.name = tool,
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        otel.status_description = tracing::field::Empty,
        mcp.tool = tool,
        repo.owner = owner,
        repo.name = repo,
        git.ref = git_ref.unwrap_or("HEAD"),
        repo.path = tracing::field::Empty,
    )
}

#[tool_router]
impl RepoServer {
    #[tool(name = "repo.tree", description = TREE_DESCRIPTION, annotations(title = "Repository tree", read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = true))]
    async fn repo_tree(
        &self,
        Parameters(args): Parameters<TreeArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let started = Instant::now();
        let span = tool_span(
            "repo.tree",
            &args.owner,
            &args.repo,
            args.git_ref.as_deref(),
        );
        span.record("repo.path", args.path.as_deref().unwrap_or(""));
        let result = self.tree(&args).instrument(span.clone()).await;
        Ok(self.finish("repo.tree", started, &span, result))
    }

    #[tool(name = "repo.read_file", description = READ_FILE_DESCRIPTION, annotations(title = "Read a repository file", read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = true))]
    async fn repo_read_file(
        &self,
        Parameters(args): Parameters<ReadFileArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let started = Instant::now();
        let span = tool_span(
            "repo.read_file",
            &args.owner,
            &args.repo,
            args.git_ref.as_deref(),
        );
        span.record("repo.path", args.path.as_str());
        let result = self.read(&args).instrument(span.clone()).await;
        Ok(self.finish("repo.read_file", started, &span, result))
    }
}

impl RepoServer {
    async fn tree(&self, args: &TreeArgs) -> Result<Vec<ContentBlock>, String> {
        input::name("owner", &args.owner).map_err(|e| e.to_string())?;
        input::name("repo", &args.repo).map_err(|e| e.to_string())?;
        // GitHub's trees endpoint resolves HEAD to the default branch: no extra request.
        let git_ref = args.git_ref.as_deref().unwrap_or("HEAD");
        input::git_ref(git_ref).map_err(|e| e.to_string())?;
        let prefix = args
            .path
            .as_deref()
            .map(input::repo_path)
            .transpose()
            .map_err(|e| e.to_string())?;
        let tree = self
            .state
            .trees
            .filtered_tree(&args.owner, &args.repo, git_ref)
            .await
            .map_err(|e| e.to_string())?;
        let text = tree
            .render(&args.owner, &args.repo, git_ref, prefix)
            .ok_or_else(|| {
                format!(
                    "no entry at {} (it does not exist or .gitignore excludes it)",
                    prefix.unwrap_or_default()
                )
            })?;
        Ok(vec![ContentBlock::text(text)])
    }

    async fn read(&self, args: &ReadFileArgs) -> Result<Vec<ContentBlock>, String> {
        input::name("owner", &args.owner).map_err(|e| e.to_string())?;
        input::name("repo", &args.repo).map_err(|e| e.to_string())?;
        if let Some(git_ref) = args.git_ref.as_deref() {
            input::git_ref(git_ref).map_err(|e| e.to_string())?;
        }
        let path = input::repo_path(&args.path).map_err(|e| e.to_string())?;
        input::line_range(args.start_line, args.end_line).map_err(|e| e.to_string())?;
        let answer = read_file(
            &self.state.github,
            &args.owner,
            &args.repo,
            path,
            args.git_ref.as_deref(),
            (args.start_line, args.end_line),
        )
        .await
        .map_err(|e| e.to_string())?;
        Ok(match answer {
            FileAnswer::Text { text, note } => {
                vec![ContentBlock::text(text), ContentBlock::text(note)]
            }
            FileAnswer::Binary { note } => vec![ContentBlock::text(note)],
        })
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for RepoServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "amtp-github-mcp",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "Read-only access to GitHub repositories: repo.tree lists a repository without its \
                 gitignored files; repo.read_file reads one file or a line range.",
            )
    }
}
