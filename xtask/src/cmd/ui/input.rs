//! Keys to actions; the help line says the same keys ([`HELP`]).

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::model::{Action, Mode, Verb};

/// The help line: each key and what it does, in the order people reach for them.
pub(crate) const HELP: &[(&str, &str)] = &[
    ("↑↓", "select"),
    ("r", "restart"),
    ("x", "stop"),
    ("s", "start"),
    ("a", "all logs"),
    ("v", "verify"),
    ("/", "search"),
    ("w", "wrap"),
    ("PgUp/Dn", "scroll"),
    ("q", "quit"),
];

/// How far PgUp and PgDn scroll.
const PAGE: isize = 10;

/// What `key` asks for in `mode`; `None` for a key that means nothing there.
pub(crate) fn action(mode: &Mode, key: KeyEvent) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    if key.modifiers.contains(KeyModifiers::CONTROL) {
        // Raw mode turns Ctrl-C into a key: it quits the view, never the stack.
        return matches!(key.code, KeyCode::Char('c')).then_some(Action::Quit);
    }
    if let Mode::Search(_) = mode {
        return match key.code {
            KeyCode::Enter => Some(Action::SearchSubmit),
            KeyCode::Esc => Some(Action::SearchCancel),
            KeyCode::Backspace => Some(Action::SearchErase),
            KeyCode::Char(c) => Some(Action::SearchType(c)),
            _ => None,
        };
    }
    Some(match key.code {
        KeyCode::Char('q') => Action::Quit,
        KeyCode::Up | KeyCode::Char('k') => Action::Select(-1),
        KeyCode::Down | KeyCode::Char('j') => Action::Select(1),
        KeyCode::Char('r') => Action::Request(Verb::Restart),
        KeyCode::Char('x') => Action::Request(Verb::Stop),
        KeyCode::Char('s') => Action::Request(Verb::Start),
        KeyCode::Char('a') => Action::ToggleAll,
        KeyCode::Char('v') => Action::Verify,
        KeyCode::Char('/') => Action::SearchBegin,
        KeyCode::Char('n') => Action::NextMatch { older: true },
        KeyCode::Char('N') => Action::NextMatch { older: false },
        KeyCode::Char('w') => Action::ToggleWrap,
        KeyCode::PageUp => Action::Scroll(PAGE),
        KeyCode::PageDown => Action::Scroll(-PAGE),
        KeyCode::Home | KeyCode::Char('g') => Action::Scroll(isize::MAX),
        KeyCode::End | KeyCode::Char('G') => Action::Follow,
        KeyCode::Esc => Action::Dismiss,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(mode: &Mode, code: KeyCode) -> Option<Action> {
        action(mode, KeyEvent::new(code, KeyModifiers::NONE))
    }

    #[test]
    fn letters_are_commands_except_while_a_search_is_typed() {
        assert_eq!(
            press(&Mode::Normal, KeyCode::Char('r')),
            Some(Action::Request(Verb::Restart))
        );
        let typing = Mode::Search("re".into());
        assert_eq!(
            press(&typing, KeyCode::Char('r')),
            Some(Action::SearchType('r'))
        );
        assert_eq!(press(&typing, KeyCode::Esc), Some(Action::SearchCancel));
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(action(&typing, ctrl_c), Some(Action::Quit));
        assert_eq!(press(&Mode::Normal, KeyCode::F(1)), None);
    }
}
