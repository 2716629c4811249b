//! The driver: owns the terminal and runs effects. One `tokio::select!` loop over terminal
//! events, a message channel (drained with `recv_many`, then one draw) and a frame timer;
//! it draws only when the state is dirty, at most ~60 times a second, and sleeps otherwise.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use crossterm::event::{Event, EventStream};
use futures::{FutureExt, StreamExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub(crate) mod crash;
pub(crate) mod in_memory;
pub(crate) mod input;
pub(crate) mod journal;
pub(crate) mod suspend;

use crate::app::model::msg::{Effect, Msg};
use crate::app::model::state::{AppState, PaneMetrics};
use crate::app::update::{set_metrics, update};
use crate::chat::{BackendStatus, StreamEvent};
use crate::config::keymap::Keymap;
use crate::config::theme::{ColorDepth, Theme};
use crate::config::Config;
use crate::error::InputError;
use crate::llm::{self, BackendRegistry};
use crate::prompt;
use crate::state::session::Session;
use crate::store;
use crate::ui::{self, ViewCache};
use journal::{RatingDriver, SaveGate};

/// At most 60 frames a second.
const FRAME: Duration = Duration::from_micros(16_667);
const TICK: Duration = Duration::from_millis(100);
/// Stream events that may wait in the loop's channel: beyond it, the streams merge their text
/// (`llm::pump_paced`), so a backend faster than the loop can't pile messages up.
const STREAM_CREDIT: usize = 1024;

/// What to open.
pub(crate) struct Open {
    pub prompt_file: Option<PathBuf>,
    pub session: Option<PathBuf>,
    pub theme: Option<String>,
}

/// Everything is loaded and validated before the screen opens, so errors print normally.
pub(crate) fn prepare(
    config: &Config,
    open: &Open,
) -> anyhow::Result<(AppState, Theme, Option<crate::store::journal::SessionStore>)> {
    let models = config.model_names();
    let mut keymap = match &config.keymap {
        Some(p) => Keymap::load(p)?,
        None => Keymap::defaults(),
    };
    keymap.set_sequence_timeout_ms(config.sequence_timeout_ms);
    let theme_name = open
        .theme
        .clone()
        .or_else(|| config.theme.clone())
        .unwrap_or_else(|| "dark".into());
    let theme = Theme::load(&theme_name, ColorDepth::from_env())?;
    let now = chrono::Utc::now();
    let mut journal = None;
    let (prompt, session, session_path) = match &open.session {
        Some(path) => {
            // Ratings live in the journal beside the file until compaction: replay it, and
            // lock it so a second promptloom can't write the same session.
            use crate::store::journal::{load_with_journal, SessionStore, StoreError};
            let session = match SessionStore::open(path) {
                Ok((session, store)) => {
                    journal = Some(store);
                    session
                }
                // A bad file is invalid input (exit 2, with file, line and column).
                Err(StoreError::Input(e)) => return Err(e.into()),
                // Can't create the journal (read-only folder): show the session anyway;
                // rating will say it can't save.
                Err(StoreError::Io { .. }) => load_with_journal(path)?,
                // Another promptloom has it: offer a read-only look (saves are refused).
                Err(StoreError::Locked(_)) if crate::store::lock::offer_read_only(path) => {
                    load_with_journal(path)?
                }
                Err(e) => return Err(e.into()),
            };
            let prompt = journal::prompt_for_session(&session, &models, &config.default_model);
            (prompt, session, path.clone())
        }
        None => {
            let file = match &open.prompt_file {
                Some(f) => f.clone(),
                None => {
                    let d = PathBuf::from("prompts/capitals.toml");
                    if d.is_file() {
                        d
                    } else {
                        return Err(InputError::plain(
                            Path::new("prompts/capitals.toml"),
                            "no prompt file given and the example is not here",
                        )
                        .with_hint(
                            "run `promptloom PROMPT_FILE.toml` or `promptloom --session FILE`",
                        )
                        .into());
                    }
                }
            };
            let prompt = prompt::load(&file, &models, &config.default_model)?;
            let dir = store::default_sessions_dir(&config.dirs.sessions_dir());
            let stem = prompt
                .path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "session".into());
            let path = store::new_session_path(
                &dir,
                &stem,
                &chrono::Local::now().format("%Y%m%d-%H%M%S").to_string(),
            );
            let mut session = Session::new(
                &prompt.title,
                now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                Some(prompt.path.display().to_string()),
            );
            session.variants = prompt.variants.clone();
            session.cases = prompt.cases.clone();
            (prompt, session, path)
        }
    };
    let mut session = session;
    // The panes and the leaderboard show costs from these; the session file records them.
    session.prices.extend(config.prices().0);
    let mut state = AppState::new(
        prompt,
        session,
        session_path,
        keymap,
        models,
        now,
        rand::random::<u64>(),
    );
    state.adapters = config.adapter_labels();
    state.indexes = crate::prompt::render::indexes_for(&state.prompt.variants);
    // The prompts show from the first frame; the variants as loaded are their versions.
    crate::app::update::settle(&mut state);
    Ok((state, theme, journal))
}

/// Restores the terminal when dropped (quit, error, or unwinding panic).
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

fn restore_terminal() {
    let _ = crossterm::execute!(std::io::stdout(), crossterm::event::DisableMouseCapture);
    ratatui::restore();
}

fn init_terminal() -> anyhow::Result<ratatui::DefaultTerminal> {
    let t = ratatui::try_init().context("cannot open the terminal")?;
    crossterm::execute!(std::io::stdout(), crossterm::event::EnableMouseCapture)?;
    Ok(t)
}

/// What the event loop needs from a screen: the user's terminal, or an in-memory one (the
/// ingest benchmark drives the same loop without a terminal).
pub(crate) trait Screen {
    fn size(&self) -> anyhow::Result<(u16, u16)>;
    fn draw(
        &mut self,
        state: &AppState,
        cache: &mut ViewCache,
        theme: &Theme,
    ) -> anyhow::Result<Vec<PaneMetrics>>;
    /// Hand the terminal to `$EDITOR` on `text` and take it back afterwards.
    fn edit_externally(&mut self, text: &str) -> anyhow::Result<Result<String, String>>;
    /// Put text on the system clipboard.
    fn copy(&mut self, text: &str);
    /// Ctrl-Z: give the terminal back, stop until continued, take it again.
    fn suspend(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
}

/// One frame of the app on any ratatui terminal.
fn draw_on<B: ratatui::backend::Backend>(
    terminal: &mut ratatui::Terminal<B>,
    state: &AppState,
    cache: &mut ViewCache,
    theme: &Theme,
) -> anyhow::Result<Vec<PaneMetrics>>
where
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let mut metrics = Vec::new();
    terminal.draw(|f| metrics = ui::draw(f, state, cache, theme))?;
    Ok(metrics)
}

/// The user's terminal (raw mode, alternate screen, mouse), restored on drop.
struct Tty {
    terminal: ratatui::DefaultTerminal,
    _guard: TerminalGuard,
}

impl Tty {
    fn open() -> anyhow::Result<Tty> {
        let terminal = init_terminal()?;
        Ok(Tty {
            terminal,
            _guard: TerminalGuard,
        })
    }
}

impl Screen for Tty {
    fn size(&self) -> anyhow::Result<(u16, u16)> {
        let s = self.terminal.size()?;
        Ok((s.width, s.height))
    }

    fn draw(
        &mut self,
        state: &AppState,
        cache: &mut ViewCache,
        theme: &Theme,
    ) -> anyhow::Result<Vec<PaneMetrics>> {
        draw_on(&mut self.terminal, state, cache, theme)
    }

    fn edit_externally(&mut self, text: &str) -> anyhow::Result<Result<String, String>> {
        let result = external_edit(text);
        restore_terminal();
        self.terminal = init_terminal()?;
        self.terminal.clear()?;
        Ok(result)
    }

    fn suspend(&mut self) -> anyhow::Result<()> {
        restore_terminal();
        suspend::stop_until_continued();
        self.terminal = init_terminal()?;
        self.terminal.clear()?;
        Ok(())
    }

    /// OSC 52: works over SSH and inside tmux.
    fn copy(&mut self, text: &str) {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
        let mut out = std::io::stdout();
        let _ = write!(out, "\x1b]52;c;{b64}\x07");
        let _ = out.flush();
    }
}

/// An in-memory screen that counts the frames drawn.
pub(crate) struct MemoryScreen {
    terminal: ratatui::Terminal<ratatui::backend::TestBackend>,
    pub frames: u64,
}

impl MemoryScreen {
    pub fn new(width: u16, height: u16) -> anyhow::Result<MemoryScreen> {
        Ok(MemoryScreen {
            terminal: ratatui::Terminal::new(ratatui::backend::TestBackend::new(width, height))?,
            frames: 0,
        })
    }

    /// What the last frame shows, one line per row.
    #[cfg(test)]
    pub fn text(&self) -> String {
        let buf = self.terminal.backend().buffer();
        let mut out = String::new();
        for y in 0..buf.area.height {
            for x in 0..buf.area.width {
                out.push_str(buf[(x, y)].symbol());
            }
            out.push('\n');
        }
        out
    }
}

impl Screen for MemoryScreen {
    fn size(&self) -> anyhow::Result<(u16, u16)> {
        let s = self.terminal.size()?;
        Ok((s.width, s.height))
    }

    fn draw(
        &mut self,
        state: &AppState,
        cache: &mut ViewCache,
        theme: &Theme,
    ) -> anyhow::Result<Vec<PaneMetrics>> {
        self.frames += 1;
        draw_on(&mut self.terminal, state, cache, theme)
    }

    fn edit_externally(&mut self, _text: &str) -> anyhow::Result<Result<String, String>> {
        Ok(Err("no terminal to run an editor in".into()))
    }

    fn copy(&mut self, _text: &str) {}
}

/// Run the playground until the user quits.
pub(crate) async fn run(config: Config, open: Open) -> anyhow::Result<ExitCode> {
    let prepared = prepare(&config, &open)?;
    let mut screen = Tty::open()?;
    let events = EventStream::new();
    let (state, close) = event_loop(config, prepared, &mut screen, events, false).await?;
    drop(screen);
    match close {
        Err(e) => {
            eprintln!("error: session not saved: {e} (ratings are kept in its .journal file)")
        }
        Ok(()) => eprintln!("{}", crate::store::lock::quit_message(&state.session_path)),
    }
    Ok(ExitCode::SUCCESS)
}

/// The app on `screen`, fed by `events`, until it quits (or, with `quit_when_idle`, until
/// everything started has finished). Returns the final state and how closing the session's
/// rating journal went.
pub(crate) async fn event_loop<S, E>(
    config: Config,
    prepared: (AppState, Theme, Option<crate::store::journal::SessionStore>),
    screen: &mut S,
    mut events: E,
    quit_when_idle: bool,
) -> anyhow::Result<(AppState, anyhow::Result<()>)>
where
    S: Screen,
    E: futures::Stream<Item = std::io::Result<Event>> + Unpin,
{
    let (mut state, theme, journal) = prepared;
    state.rating.rater = config.rater_name();
    // The session browser's folders (the in-process harness sets its own).
    if state.rating.session_dirs.is_empty() {
        state.rating.session_dirs = vec![PathBuf::from("sessions"), config.dirs.sessions_dir()];
        if let Some(dir) = state
            .session_path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            state.rating.session_dirs.push(dir.to_path_buf());
        }
    }
    let mut ratings = RatingDriver::new(
        journal,
        &state,
        config.model_names(),
        config.default_model.clone(),
    );
    state.tools.permissions = state
        .prompt
        .tools
        .iter()
        .map(|d| {
            (
                d.spec.name.clone(),
                crate::tool_run::permission(&config, false, d),
            )
        })
        .collect();
    let tool_config = Arc::new(config.clone());
    let registry = Arc::new(BackendRegistry::new(config));
    // Load syntect's assets and start loading models off the UI loop.
    tokio::task::spawn_blocking(ui::answer::warm_up);
    let mut used: Vec<String> = state
        .prompt
        .variants
        .iter()
        .map(|v| v.model.clone())
        .collect();
    used.sort();
    used.dedup();
    for m in &used {
        if let Ok(b) = registry.get(m) {
            b.preload();
        }
    }

    let (width, height) = screen.size()?;
    update(&mut state, Msg::Resize { width, height });

    let t0 = Instant::now();
    let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
    let save_slot = Arc::new(SaveSlot::default());
    let saver = tokio::spawn(saver(save_slot.clone(), tx.clone(), ratings.gate.clone()));
    let mut save_pull = SavePull::default();
    // Stream events in the channel not yet handled, at most (see `llm::pump_paced`).
    let stream_credit = Arc::new(tokio::sync::Semaphore::new(STREAM_CREDIT));
    let mut tool_tasks: BTreeMap<u64, Vec<tokio::task::AbortHandle>> = BTreeMap::new();
    let mut streams: BTreeMap<u64, CancellationToken> = BTreeMap::new();
    let mut started = false;
    let mut cache = ViewCache::default();
    let mut last_draw = Instant::now() - FRAME;
    let mut next_tick: Option<tokio::time::Instant> = None;
    let mut statuses: BTreeMap<String, BackendStatus> = BTreeMap::new();
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut sighup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut buf = Vec::with_capacity(256);
    let mut poll_models = true;

    let panic_after = crash::panic_after_frames();
    let mut frames = 0u64;
    // A panic in the loop (update, an effect, a view) is caught here so the session is
    // saved before it goes on; ratatui's panic hook has already restored the terminal.
    let outcome = std::panic::AssertUnwindSafe(async {
        loop {
            if poll_models {
                let now = registry.statuses();
                if now != statuses {
                    statuses = now.clone();
                    let _ = tx.send(Msg::ModelStatus(now.into_iter().collect()));
                }
                poll_models =
                    statuses.values().any(|s| *s == BackendStatus::Loading) || state.any_active();
            }
            if state.dirty {
                let wait = FRAME.saturating_sub(last_draw.elapsed());
                if wait.is_zero() {
                    let metrics = screen.draw(&state, &mut cache, &theme)?;
                    frames += 1;
                    crash::maybe_panic(panic_after, frames);
                    set_metrics(&mut state, metrics);
                    state.dirty = false;
                    last_draw = Instant::now();
                } else {
                    let at = tokio::time::Instant::now() + wait;
                    next_tick = Some(next_tick.map_or(at, |t| t.min(at)));
                }
            }
            if (state.any_active() || poll_models) && next_tick.is_none() {
                next_tick = Some(tokio::time::Instant::now() + TICK);
            }
            started |= state.any_active();
            if state.quit || (quit_when_idle && started && !state.any_active()) {
                break;
            }
            let tick = async {
                match next_tick {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            let mut msgs: Vec<Msg> = Vec::new();
            tokio::select! {
                ev = events.next() => match ev {
                    Some(Ok(Event::Key(key))) if suspend::is_suspend_key(&key) => {
                        screen.suspend()?;
                        // The terminal may have been resized while we were stopped.
                        let (width, height) = screen.size()?;
                        msgs.push(Msg::Resize { width, height });
                        state.dirty = true;
                    }
                    Some(Ok(Event::Key(key))) if key.kind != crossterm::event::KeyEventKind::Release => {
                        if let Some(key) = input::key(&key) {
                            msgs.push(Msg::Key { key, at: t0.elapsed() })
                        }
                    }
                    Some(Ok(Event::Mouse(mouse))) => {
                        msgs.push(Msg::Mouse { mouse: input::mouse(&mouse), at: t0.elapsed() })
                    }
                    Some(Ok(Event::Resize(width, height))) => msgs.push(Msg::Resize { width, height }),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e).context("reading terminal events"),
                    None => break,
                },
                n = rx.recv_many(&mut buf, 256) => {
                    if n == 0 { break; }
                    msgs.append(&mut buf);
                }
                _ = tick => {
                    next_tick = None;
                    msgs.push(Msg::Tick { at: t0.elapsed() });
                    poll_models = true;
                }
                // Close any layer (and a started key sequence) first: there `q` may only
                // close it.
                _ = sigterm.recv() => { state.layers.clear(); state.pending_keys = None; msgs.push(quit_key(t0)) }
                _ = sighup.recv() => { state.layers.clear(); state.pending_keys = None; msgs.push(quit_key(t0)) }
            }
            for msg in msgs {
                if matches!(msg, Msg::Saved { .. }) {
                    save_pull.saved();
                }
                if let Msg::Stream { node, event, .. } = &msg {
                    // Handled: the stream may hand on one more event.
                    stream_credit.add_permits(1);
                    if event.is_terminal() {
                        streams.remove(node);
                    }
                }
                for fx in update(&mut state, msg) {
                    run_effect(
                        fx,
                        &mut state,
                        &registry,
                        &tx,
                        &save_slot,
                        &mut save_pull,
                        &mut tool_tasks,
                        &mut streams,
                        screen,
                        t0,
                        &mut ratings,
                        &tool_config,
                        &stream_credit,
                    )?;
                }
            }
            if let Some(path) = save_pull.due(&state.session_path) {
                put_snapshot(&state, path, &registry, &ratings, &save_slot);
            }
            streams.retain(|_, t| !t.is_cancelled());
        }
        Ok::<(), anyhow::Error>(())
    })
    .catch_unwind()
    .await;
    // Streams waiting for credit stop: nobody handles their events any more.
    stream_credit.close();
    match outcome {
        Ok(result) => result?,
        Err(panic) => {
            for t in streams.values() {
                t.cancel();
            }
            let saved = ratings.close(&state, &registry.identities(), true);
            crash::report_saved(&state.session_path, &saved);
            std::panic::resume_unwind(panic);
        }
    }
    for t in streams.values() {
        t.cancel();
    }
    // A save still waiting for the saver: its snapshot goes after the one being written.
    if let Some(path) = save_pull
        .pending
        .take()
        .filter(|p| *p == state.session_path)
    {
        put_snapshot(&state, path, &registry, &ratings, &save_slot);
    }
    save_slot.close();
    let _ = saver.await;
    // Fold the rating journal into the session file.
    let close = ratings
        .close(&state, &registry.identities(), false)
        .map_err(|e| anyhow::anyhow!("{e}"));
    Ok((state, close))
}

/// SIGTERM/SIGHUP: behave like `q` (cancel, save, restore the terminal).
fn quit_key(t0: Instant) -> Msg {
    Msg::Key {
        key: crate::app::model::keys::Key::char('q'),
        at: t0.elapsed(),
    }
}

/// A session snapshot to save, numbered by [`SaveGate::next_generation`].
type SaveJob = (PathBuf, Box<Session>, u64);

/// The one save waiting to be written. A newer snapshot replaces (and frees) an older one
/// that is still waiting, so however fast answers finish, at most one snapshot waits while
/// another is written. (A queue held every snapshot the loop made while a save was being
/// written: a 2-minute soak of 6 panes at full speed reached 1.7 GB of RSS that way.)
#[derive(Default)]
struct SaveSlot {
    job: std::sync::Mutex<Option<SaveJob>>,
    closed: std::sync::atomic::AtomicBool,
    ready: tokio::sync::Notify,
}

impl SaveSlot {
    fn put(&self, job: SaveJob) {
        let older = match self.job.lock() {
            Ok(mut slot) => slot.replace(job),
            Err(poisoned) => poisoned.into_inner().replace(job),
        };
        drop(older);
        self.ready.notify_one();
    }

    fn take(&self) -> Option<SaveJob> {
        match self.job.lock() {
            Ok(mut slot) => slot.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        }
    }

    /// No more saves: the saver writes what is waiting and ends.
    fn close(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        self.ready.notify_one();
    }
}

/// When to take the session's snapshot. A save asked for while the saver is busy is only
/// noted; the snapshot is taken when the saver reports back, so it holds everything asked
/// for meanwhile, and the loop never copies the session more often than the saver writes it.
/// (Copying on every request, 6 panes at full speed made ~100 copies of a growing session a
/// second, nearly all dropped unwritten: the allocator kept their pages.)
#[derive(Debug, Default)]
struct SavePull {
    /// Snapshots handed to the saver and not yet reported as written.
    in_flight: usize,
    /// A save asked for while one was in flight: the session file it is for.
    pending: Option<PathBuf>,
}

impl SavePull {
    /// A save of `path` is wanted: `true` to snapshot now, else it waits for the saver.
    fn request(&mut self, path: PathBuf) -> bool {
        if self.in_flight == 0 {
            self.in_flight += 1;
            true
        } else {
            self.pending = Some(path);
            false
        }
    }

    /// The saver wrote (or failed to write) one snapshot.
    fn saved(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// The waiting save, if it is due now (the saver is free) and still for `current` (a
    /// save for a session since switched away from is dropped: that one was written whole
    /// when it was left).
    fn due(&mut self, current: &Path) -> Option<PathBuf> {
        if self.in_flight > 0 {
            return None;
        }
        let path = self.pending.take().filter(|p| p == current)?;
        self.in_flight += 1;
        Some(path)
    }
}

/// Hand `state`'s snapshot for `path` to the saver.
fn put_snapshot(
    state: &AppState,
    path: PathBuf,
    registry: &BackendRegistry,
    ratings: &RatingDriver,
    slot: &SaveSlot,
) {
    let mut session = state.snapshot();
    session.models = registry.identities();
    slot.put((path, Box::new(session), ratings.gate.next_generation()));
}

/// Saves sessions off the UI loop: the latest snapshot only, and never over a newer one (see
/// [`SaveGate`]).
async fn saver(slot: Arc<SaveSlot>, tx: mpsc::UnboundedSender<Msg>, gate: Arc<SaveGate>) {
    loop {
        let job = match slot.take() {
            Some(job) => job,
            // Closed after its last put: what that put left is seen by this take.
            None if slot.closed.load(std::sync::atomic::Ordering::SeqCst) => match slot.take() {
                Some(job) => job,
                None => break,
            },
            None => {
                slot.ready.notified().await;
                continue;
            }
        };
        let (path, session, generation) = job;
        let p = path.clone();
        let gate = gate.clone();
        let res = tokio::task::spawn_blocking(move || {
            let saved = gate.save(&p, &session, generation);
            drop(session);
            // The snapshot and its text were megabytes, freed in whichever thread's arena:
            // give those pages back (see `store::return_freed_memory`).
            store::return_freed_memory();
            saved
        })
        .await;
        let error = match res {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(e) => Some(e.to_string()),
        };
        let _ = tx.send(Msg::Saved { path, error });
    }
}

#[allow(clippy::too_many_arguments)]
fn run_effect<S: Screen>(
    fx: Effect,
    state: &mut AppState,
    registry: &Arc<BackendRegistry>,
    tx: &mpsc::UnboundedSender<Msg>,
    save_slot: &SaveSlot,
    save_pull: &mut SavePull,
    tool_tasks: &mut BTreeMap<u64, Vec<tokio::task::AbortHandle>>,
    streams: &mut BTreeMap<u64, CancellationToken>,
    screen: &mut S,
    t0: Instant,
    ratings: &mut RatingDriver,
    tool_config: &Arc<Config>,
    stream_credit: &Arc<tokio::sync::Semaphore>,
) -> anyhow::Result<()> {
    match fx {
        Effect::StartStream {
            node,
            request,
            model,
            chat,
        } => {
            let token = CancellationToken::new();
            streams.insert(node, token.clone());
            let tx = tx.clone();
            let credit = stream_credit.clone();
            let backend = registry.get(&model);
            tokio::spawn(async move {
                let send = |event: StreamEvent| {
                    tx.send(Msg::Stream {
                        node,
                        request,
                        event,
                        at: t0.elapsed(),
                    })
                };
                let backend = match backend {
                    Ok(b) => b,
                    Err(e) => {
                        if let Ok(p) = credit.acquire().await {
                            p.forget();
                            let _ = send(StreamEvent::Failed(e));
                        }
                        return;
                    }
                };
                let handle = backend.start(chat);
                let _ = tx.send(Msg::StreamStarted { node, request });
                llm::pump_paced(handle, &token, &credit, |ev| send(ev).is_ok()).await;
            });
        }
        Effect::CancelStream { node } => {
            if let Some(t) = streams.remove(&node) {
                t.cancel();
            }
        }
        Effect::SaveSession { path } => {
            if save_pull.request(path.clone()) {
                put_snapshot(state, path, registry, ratings, save_slot);
            }
        }
        Effect::Copy(text) => screen.copy(&text),
        Effect::OpenEditor { variant, text } => {
            let result = screen.edit_externally(&text)?;
            state.dirty = true;
            let _ = tx.send(Msg::ExternalEditDone { variant, result });
        }
        Effect::WritePromptFile { path, text } => {
            let tx = tx.clone();
            tokio::task::spawn_blocking(move || {
                let error = store::write_atomic(&path, text.as_bytes())
                    .err()
                    .map(|e| e.to_string());
                let _ = tx.send(Msg::PromptWritten { path, error });
            });
        }
        Effect::SequenceTimer { id, after } => {
            let tx = tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                let _ = tx.send(Msg::SequenceTimeout { id });
            });
        }
        Effect::Preload(model) => {
            if let Ok(b) = registry.get(&model) {
                b.preload();
            }
        }
        Effect::Rating(fx) => ratings.run(fx, state, &registry.identities(), tx),
        Effect::Gather { node, request, run } => {
            let tx = tx.clone();
            tokio::spawn(async move {
                // Reading and indexing the files can take a while (a 10 MB corpus: ~0.8 s).
                let read = {
                    let run = run.clone();
                    tokio::task::spawn_blocking(move || {
                        crate::prompt::render::read_inputs(&run.variant, &run.case)
                    })
                };
                let (indexes, wants) = read.await.unwrap_or_default();
                let vectors = llm::embed::fetch_off_thread(wants).await;
                let _ = tx.send(Msg::Gathered {
                    node,
                    request,
                    run,
                    indexes,
                    vectors,
                    at: t0.elapsed(),
                });
            });
        }
        Effect::Tool(crate::app::model::tools::ToolEffect::Run {
            answer,
            index,
            external,
        }) => {
            let tx = tx.clone();
            let config = tool_config.clone();
            tool_tasks.retain(|_, hs| {
                hs.retain(|h| !h.is_finished());
                !hs.is_empty()
            });
            let task = tokio::spawn(async move {
                let result = crate::tool_run::run_external(&config, &external).await;
                let _ = tx.send(Msg::Tool(crate::app::model::tools::ToolMsg::Done {
                    answer,
                    index,
                    result,
                    at: t0.elapsed(),
                }));
            });
            tool_tasks
                .entry(answer)
                .or_default()
                .push(task.abort_handle());
        }
        Effect::Tool(crate::app::model::tools::ToolEffect::Cancel { answers }) => {
            // Aborting drops the call: a command's child is killed (kill_on_drop), an MCP
            // call's server connection closed. Nothing reports back; update forgot the round.
            for a in answers {
                for h in tool_tasks.remove(&a).unwrap_or_default() {
                    h.abort();
                }
            }
        }
    }
    Ok(())
}

/// Hand the terminal to `$VISUAL`/`$EDITOR` (default `vi`) on a temp file.
fn external_edit(text: &str) -> Result<String, String> {
    restore_terminal();
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("variant.toml");
    std::fs::write(&path, text).map_err(|e| e.to_string())?;
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".into());
    let mut parts = editor.split_whitespace();
    let prog = parts.next().unwrap_or("vi");
    let status = std::process::Command::new(prog)
        .args(parts)
        .arg(&path)
        .status()
        .map_err(|e| format!("cannot run {editor:?}: {e}"))?;
    if !status.success() {
        return Err(format!("{editor:?} exited with {status}"));
    }
    std::fs::read_to_string(&path).map_err(|e| e.to_string())
}

#[cfg(test)]
mod save_slot_tests {
    use super::*;

    fn job(n: u64) -> SaveJob {
        (
            PathBuf::from(format!("s{n}.toml")),
            Box::new(Session::new("t", "2026-01-01T00:00:00.000Z".into(), None)),
            n,
        )
    }

    #[test]
    fn a_newer_snapshot_replaces_the_one_waiting() {
        let slot = SaveSlot::default();
        for n in 1..=3 {
            slot.put(job(n));
        }
        assert_eq!(slot.take().map(|j| j.2), Some(3));
        assert!(slot.take().is_none());
    }

    #[tokio::test]
    async fn the_saver_writes_the_last_snapshot_before_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        let slot = Arc::new(SaveSlot::default());
        let (tx, mut rx) = mpsc::unbounded_channel();
        let gate = Arc::new(SaveGate::default());
        let path = dir.path().join("s.toml");
        for n in 1..=3 {
            let mut s = Session::new("t", "2026-01-01T00:00:00.000Z".into(), None);
            s.title = format!("v{n}");
            slot.put((path.clone(), Box::new(s), gate.next_generation()));
        }
        slot.close();
        saver(slot.clone(), tx, gate).await;
        let mut saved = 0;
        while let Ok(m) = rx.try_recv() {
            assert!(matches!(m, Msg::Saved { error: None, .. }), "{m:?}");
            saved += 1;
        }
        assert_eq!(saved, 1, "only the latest snapshot is written");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("v3"), "{text}");
    }

    /// A burst of saves while one is being written makes one more snapshot, taken when the
    /// saver is free; a save waiting for a session switched away from is dropped.
    #[test]
    fn saves_asked_for_while_the_saver_is_busy_make_one_snapshot_later() {
        let a = PathBuf::from("a.toml");
        let mut pull = SavePull::default();
        assert!(pull.request(a.clone()), "idle: snapshot now");
        for _ in 0..100 {
            assert!(!pull.request(a.clone()), "busy: wait");
        }
        assert_eq!(pull.due(&a), None, "still writing the first");
        pull.saved();
        assert_eq!(
            pull.due(&a),
            Some(a.clone()),
            "one snapshot for the hundred"
        );
        assert_eq!(pull.due(&a), None);
        pull.saved();
        assert_eq!(pull.due(&a), None, "nothing waiting");
        // Busy, a save for a; then the app switched to b: a's waiting save is dropped.
        assert!(pull.request(a.clone()));
        assert!(!pull.request(a.clone()));
        pull.saved();
        assert_eq!(pull.due(Path::new("b.toml")), None);
        assert!(pull.request(PathBuf::from("b.toml")), "idle again");
    }
}

#[cfg(test)]
mod tests;
