//! Markdown to the site's HTML: one plain HTML5 template (a `<nav>` of every page, `<main>`,
//! no JavaScript), links between pages rewritten to `.html`, raw HTML shown as text.

use std::collections::{BTreeSet, HashMap};

use pulldown_cmark::{CowStr, Event, HeadingLevel, Options, Parser, Tag, TagEnd, html};

use super::{Page, SITE_TITLE};

/// In every page's head: marks the pages a rebuild may delete once their source is gone.
pub(super) const GENERATOR_META: &str = "<meta name=\"generator\" content=\"cargo xtask docs\">";

pub(super) fn markdown_options() -> Options {
    Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS
}

/// The text of the first `#` heading.
pub(super) fn first_heading(markdown: &str) -> Option<String> {
    let mut events = Parser::new_ext(markdown, markdown_options()).skip_while(|e| {
        !matches!(
            e,
            Event::Start(Tag::Heading {
                level: HeadingLevel::H1,
                ..
            })
        )
    });
    events.next()?;
    let text: String = events
        .take_while(|e| !matches!(e, Event::End(TagEnd::Heading(_))))
        .filter_map(|e| match e {
            Event::Text(t) | Event::Code(t) => Some(t),
            _ => None,
        })
        .collect::<Vec<_>>()
        .concat();
    (!text.trim().is_empty()).then(|| text.trim().to_owned())
}

pub(super) fn render_page(page: &Page, pages: &[Page], site: &BTreeSet<String>) -> String {
    let events: Vec<Event> = Parser::new_ext(&page.markdown, markdown_options()).collect();
    let events = with_heading_ids(events);
    let events = resolve_links(events, &page.target, site);
    let events = raw_html_as_text(events);
    let mut content = String::new();
    html::push_html(&mut content, events.into_iter());

    let root = "../".repeat(page.target.matches('/').count());
    format!(
        "<!DOCTYPE html>\n\
         <html lang=\"en\">\n\
         <head>\n\
         <meta charset=\"utf-8\">\n\
         {GENERATOR_META}\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n\
         <link rel=\"stylesheet\" href=\"{root}style.css\">\n\
         <link rel=\"icon\" href=\"{root}logo.svg\" type=\"image/svg+xml\">\n\
         </head>\n\
         <body>\n\
         <header><a href=\"{root}index.html\"><img src=\"{root}logo.svg\" alt=\"\" width=\"28\" height=\"28\">{site_title}</a></header>\n\
         {nav}\
         <main>\n{content}</main>\n\
         <footer>Rendered by <code>cargo xtask docs</code> from <code>docs/{source}</code>.</footer>\n\
         </body>\n\
         </html>\n",
        title = escape(&if page.title == SITE_TITLE {
            SITE_TITLE.to_owned()
        } else {
            format!("{} · {SITE_TITLE}", page.title)
        }),
        site_title = escape(SITE_TITLE),
        nav = navigation(pages, &page.target, &root),
        source = escape(&page.source),
    )
}

/// HTML-escapes text through pulldown-cmark's own writer.
pub(super) fn escape(text: &str) -> String {
    let mut escaped = String::new();
    html::push_html(&mut escaped, std::iter::once(Event::Text(text.into())));
    escaped
}

/// Every page: top-level pages in order, a folder's pages nested under the page of its name.
pub(super) fn navigation(pages: &[Page], current: &str, root: &str) -> String {
    let item = |page: &Page| {
        let current = if page.target == current {
            " aria-current=\"page\""
        } else {
            ""
        };
        // The home page's title is the site's, already in the header.
        let label = if page.title == SITE_TITLE {
            "Overview"
        } else {
            &page.title
        };
        format!(
            "<a href=\"{root}{}\"{current}>{}</a>",
            page.target,
            escape(label)
        )
    };
    let mut nav = String::from("<nav aria-label=\"Pages\">\n<ul>\n");
    let mut index = 0;
    while index < pages.len() {
        let page = &pages[index];
        let folder = format!("{}/", page.target.trim_end_matches(".html"));
        let children: Vec<&Page> = pages[index + 1..]
            .iter()
            .take_while(|p| p.target.starts_with(&folder))
            .collect();
        if children.is_empty() {
            nav.push_str(&format!("<li>{}</li>\n", item(page)));
        } else {
            nav.push_str(&format!("<li>{}\n<ul>\n", item(page)));
            for child in &children {
                nav.push_str(&format!("<li>{}</li>\n", item(child)));
            }
            nav.push_str("</ul>\n</li>\n");
        }
        index += 1 + children.len();
    }
    nav.push_str("</ul>\n</nav>\n");
    nav
}

/// Gives every heading an id from its text (GitHub's style, `-2` etc. for repeats), so pages
/// can link to sections.
pub(super) fn with_heading_ids(mut events: Vec<Event<'_>>) -> Vec<Event<'_>> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for start in 0..events.len() {
        if !matches!(events[start], Event::Start(Tag::Heading { id: None, .. })) {
            continue;
        }
        let text: String = events[start + 1..]
            .iter()
            .take_while(|e| !matches!(e, Event::End(TagEnd::Heading(_))))
            .filter_map(|e| match e {
                Event::Text(t) | Event::Code(t) => Some(t.as_ref()),
                _ => None,
            })
            .collect();
        let base = slug(&text);
        let count = seen.entry(base.clone()).or_insert(0);
        let id = if *count == 0 {
            base
        } else {
            format!("{base}-{count}")
        };
        *count += 1;
        if let Event::Start(Tag::Heading { id: slot, .. }) = &mut events[start] {
            *slot = Some(CowStr::from(id));
        }
    }
    events
}

/// `Valkey 8.0 (cache)` → `valkey-80-cache`.
pub(super) fn slug(text: &str) -> String {
    let slug: String = text
        .trim()
        .chars()
        .flat_map(char::to_lowercase)
        .filter_map(|c| match c {
            c if c.is_alphanumeric() || c == '_' || c == '-' => Some(c),
            c if c.is_whitespace() => Some('-'),
            _ => None,
        })
        .collect();
    if slug.is_empty() {
        "section".to_owned()
    } else {
        slug
    }
}

/// Rewrites links to `.md` pages into links to their `.html`; a relative link whose target is
/// not part of the site loses its link and keeps its text.
pub(super) fn resolve_links<'a>(
    events: Vec<Event<'a>>,
    page: &str,
    site: &BTreeSet<String>,
) -> Vec<Event<'a>> {
    let mut dropping = false;
    events
        .into_iter()
        .filter_map(|event| match event {
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }) => match site_link(&dest_url, page, site) {
                Some(dest_url) => Some(Event::Start(Tag::Link {
                    link_type,
                    dest_url,
                    title,
                    id,
                })),
                None => {
                    dropping = true;
                    None
                }
            },
            Event::End(TagEnd::Link) if dropping => {
                dropping = false;
                None
            }
            other => Some(other),
        })
        .collect()
}

/// The URL to write for a link from `page`, or `None` when it points at a file outside the site.
pub(super) fn site_link<'a>(
    dest: &CowStr<'a>,
    page: &str,
    site: &BTreeSet<String>,
) -> Option<CowStr<'a>> {
    let external = dest.starts_with('#')
        || dest.starts_with('/')
        || dest
            .split_once(':')
            .is_some_and(|(scheme, _)| !scheme.contains('/'));
    if external {
        return Some(dest.clone());
    }
    let (path, fragment) = match dest.split_once('#') {
        Some((path, fragment)) => (path, Some(fragment)),
        None => (dest.as_ref(), None),
    };
    let path = match path.strip_suffix(".md") {
        Some(stem) => format!("{stem}.html"),
        None => path.to_owned(),
    };
    let mut resolved: Vec<&str> = page.split('/').collect();
    resolved.pop();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                resolved.pop()?;
            }
            part => resolved.push(part),
        }
    }
    let mut target = resolved.join("/");
    if path.ends_with('/') || target.is_empty() {
        target = format!("{target}/index.html")
            .trim_start_matches('/')
            .to_owned();
    }
    if !site.contains(&target) {
        return None;
    }
    Some(CowStr::from(match fragment {
        Some(fragment) => format!("{path}#{fragment}"),
        None => path,
    }))
}

/// Raw HTML in Markdown is shown as text (comments are dropped): the template is the only
/// markup, so every page stays well-formed.
pub(super) fn raw_html_as_text(events: Vec<Event<'_>>) -> Vec<Event<'_>> {
    let mut in_comment = false;
    events
        .into_iter()
        .filter_map(|event| match event {
            Event::Html(text) | Event::InlineHtml(text) => {
                let starts = text.trim_start().starts_with("<!--");
                if starts || in_comment {
                    in_comment = !text.contains("-->");
                    None
                } else {
                    Some(Event::Text(text))
                }
            }
            Event::Start(Tag::HtmlBlock) | Event::End(TagEnd::HtmlBlock) => None,
            other => Some(other),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_to_pages_become_html_and_links_out_of_the_site_lose_their_link() {
        let site: BTreeSet<String> = ["index.html", "flags.html", "benchmarks/healthcheck.html"]
            .map(String::from)
            .into();
        let markdown = "[f](flags.md#valkey) [b](benchmarks/healthcheck.md) [x](../xtask/src/docs.rs) \
                        [a](#top) [w](https://example.com/a.md)";
        let events: Vec<Event> = Parser::new(markdown).collect();
        let mut html = String::new();
        html::push_html(
            &mut html,
            resolve_links(events, "index.html", &site).into_iter(),
        );
        assert_eq!(
            html,
            "<p><a href=\"flags.html#valkey\">f</a> <a href=\"benchmarks/healthcheck.html\">b</a> x \
             <a href=\"#top\">a</a> <a href=\"https://example.com/a.md\">w</a></p>\n"
        );
        let back = site_link(&"../index.md".into(), "benchmarks/healthcheck.html", &site);
        assert_eq!(back.as_deref(), Some("../index.html"));
    }

    #[test]
    fn headings_get_unique_ids_and_raw_html_is_text() {
        let markdown = "# Quick start\n## Valkey 8.0 (cache)\n## Quick start\n\n<!-- note\nmore -->\n\n<b>bold</b>\n";
        let events: Vec<Event> = Parser::new(markdown).collect();
        let mut html = String::new();
        html::push_html(
            &mut html,
            raw_html_as_text(with_heading_ids(events)).into_iter(),
        );
        assert_eq!(
            html,
            "<h1 id=\"quick-start\">Quick start</h1>\n<h2 id=\"valkey-80-cache\">Valkey 8.0 (cache)</h2>\n\
             <h2 id=\"quick-start-1\">Quick start</h2>\n<p>&lt;b&gt;bold&lt;/b&gt;</p>\n"
        );
    }
}
