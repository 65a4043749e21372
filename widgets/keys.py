"""Every key of the screen, one table per place: the bindings, the dialogs' hint lines,
the help screen and the command palette are all made from these tables, so a key is
written down once.

Every binding has an ``id``: ``App.set_keymap({"waylay.clear": "c"})`` remaps it.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding, BindingType


@dataclass(frozen=True, slots=True)
class Key:
    """One key: what Textual binds, what the footer, the hint line and the help say."""

    keys: str  # Textual's key spec: "c,f", "question_mark"
    action: str  # Textual's action: "app.filter", "decide('cancel')"
    label: str  # the footer's short word
    id: str  # the binding id, for keymaps
    does: str = ""  # the hint line's and the help's words (default: label)
    shown: str = ""  # the key as people read it (default: from ``keys``)
    footer: bool = True
    palette: str = ""  # a command palette title, for the app's own commands
    hinted: bool = True  # on the dialog's hint line

    @property
    def words(self) -> str:
        return self.does or self.label

    @property
    def key_text(self) -> str:
        if self.shown:
            return self.shown
        names = {"question_mark": "?", "space": "space", "escape": "escape"}
        return "/".join(names.get(k, k) for k in self.keys.split(",") if not k.startswith("shift+"))

    def binding(self) -> Binding:
        return Binding(self.keys, self.action, self.label, show=self.footer, id=self.id)


Table = tuple[Key, ...]


def bindings(table: Table) -> list[BindingType]:
    return [key.binding() for key in table]


def hint(table: Table, tail: str = "") -> str:
    """The hint line of a dialog: ``c continue · x cancel · …`` and ``tail``."""
    parts = [f"{key.key_text} {key.words}" for key in table if key.hinted]
    if tail:
        parts.append(tail)
    return " · ".join(parts)


STAYS_PAUSED = "escape closes, the flow stays paused"

# -- the main screen -----------------------------------------------------------------------

FLOW_LIST: Table = (
    Key("enter", "app.open_selected", "Open", "waylay.open",
        "the dialog of a paused flow, else its details"),
    Key("a", "app.continue_selected", "Continue", "waylay.continue",
        "continue the selected paused flow (or the marked ones)"),
    Key("A", "app.continue_all", "Continue all", "waylay.continue_all",
        "continue all paused flows", palette="Continue all paused flows"),
    Key("X", "app.cancel_selected", "Cancel", "waylay.cancel",
        "cancel the selected paused flow or the marked ones (reject a certificate)"),
    Key("p", "app.next_paused", "Next paused", "waylay.next_paused",
        "jump to the next paused flow, the longest waiting first",
        palette="Next paused flow"),
    Key("i", "app.set_breakpoint", "Breakpoint", "waylay.breakpoint",
        "set a breakpoint: match pattern or filter expression; empty clears",
        palette="Set breakpoint"),
    Key("I", "app.toggle_breakpoints", "Breakpoints on/off", "waylay.toggle_breakpoints",
        "breakpoints on/off", palette="Toggle breakpoints"),
    Key("f", "app.filter", "Filter", "waylay.filter",
        "filter the list: mitmproxy filter expression, or plain text", palette="Filter flows"),
    Key("R", "app.rules", "Rules", "waylay.rules", "the rules screen", palette="Rules"),
    Key("E", "app.export", "Export", "waylay.export",
        "export: the flow as curl, all flows as HAR, the rules", palette="Export"),
    Key("z", "app.clear_finished", "Clear", "waylay.clear", "clear finished flows",
        palette="Clear finished flows"),
    Key("q", "app.quit", "Quit", "waylay.quit", "quit (asks first while flows are paused)"),
    Key("escape", "app.close_detail", "Close details", "waylay.close_detail",
        "close the detail pane"),
    Key("up", "cursor_up", "Up", "waylay.cursor_up", "move up", footer=False),
    Key("down", "cursor_down", "Down", "waylay.cursor_down", "move down", footer=False),
    Key("pageup", "page_up", "Page up", "waylay.page_up", "a page up", footer=False),
    Key("pagedown", "page_down", "Page down", "waylay.page_down", "a page down",
        footer=False),
    Key("home,g,ctrl+home", "first", "First", "waylay.first", "the first row",
        footer=False),
    Key("end,G,ctrl+end", "last", "Last", "waylay.last", "the last row", footer=False),
    Key("F", "toggle_follow", "Follow", "waylay.follow", "follow new flows on/off",
        footer=False),
    Key("o", "cycle_sort", "Sort", "waylay.sort",
        "sort by the next column (or click a column label)", footer=False),
    Key("O", "app.toggle_auto_open", "Auto-open", "waylay.auto_open",
        "open dialogs by themselves when something pauses (never over a form)",
        footer=False, palette="Toggle auto-open"),
    Key("m", "app.toggle_mark", "Mark", "waylay.mark", "mark the selected flow (again: unmark)",
        footer=False),
    Key("M", "app.marked_only", "Marked only", "waylay.marked_only",
        "show marked flows only, or every flow", footer=False),
    Key("d", "app.delete_selected", "Delete", "waylay.delete",
        "delete the selected finished flow", footer=False),
    Key("r", "app.replay", "Replay", "waylay.replay",
        "replay the selected flow through the proxy (rules apply): a new row", footer=False),
    Key("D", "app.duplicate", "Duplicate", "waylay.duplicate",
        "duplicate the selected flow into an edit form: sending makes a new flow",
        footer=False),
    Key("l", "app.event_log", "Event log", "waylay.event_log",
        "the event log: proxy errors, rules reloads, timeouts, TLS failures", footer=False,
        palette="Event log"),
)  # fmt: skip

APP: Table = (
    Key("question_mark", "help", "Help", "waylay.help", "this help", palette="Keys"),
    Key("w", "save_flows", "Save", "waylay.save",
        "save all or the listed flows (mitmproxy's flow format)", palette="Save flows"),
)  # fmt: skip

ATTACHED: Table = (
    Key("Q", "app.stop_proxy", "Stop proxy", "waylay.stop_proxy",
        "stop the proxy process (asks first); every screen attached to it closes",
        palette="Stop the proxy"),
)  # fmt: skip
"""The screen on a proxy process (``waylay``, ``waylay attach``); there ``q`` of an
attached screen detaches."""

DETAIL: Table = (
    Key("escape,q", "app.close_detail", "Back", "waylay.detail.close",
        "back to the flow list (q too, as in mitmproxy; escape waits for the terminal)"),
    Key("v", "cycle_view", "View mode", "waylay.detail.view",
        "body view: auto, JSON, HTML/XML, form, image, hex, raw"),
    Key("slash", "search", "Search", "waylay.detail.search",
        "search the details; n / N: next / previous match", shown="/"),
    Key("n", "next_match", "Next", "waylay.detail.next", "next match", footer=False),
    Key("N", "previous_match", "Previous", "waylay.detail.previous", "previous match",
        footer=False),
)  # fmt: skip

HELP: Table = (Key("escape,q,question_mark", "close", "Close", "waylay.help.close"),)

EVENT_LOG: Table = (
    Key("escape,l,q", "close", "Close", "waylay.event_log.close", "close the event log"),
)

REQUEST_EDITOR: Table = (
    Key("ctrl+s", "send", "send", "waylay.editor.send",
        "send the edited copy through the proxy: a new flow"),
    Key("escape", "close", "close", "waylay.editor.close", "close; nothing is sent"),
)  # fmt: skip

# -- the decision dialogs ------------------------------------------------------------------

DIALOG: Table = (
    Key("escape", "back", "back", "dialog.back", "back one step: out of a form or a confirmation"),
    Key("escape", "close", "close", "dialog.close", "close; the flow stays paused"),
    Key("enter", "confirm", "confirm", "dialog.confirm", "confirm", footer=False),
    Key("1", "remember('once')", "once", "dialog.remember_once", footer=False),
    Key("2", "remember('url')", "this URL", "dialog.remember_url", footer=False),
    Key("3", "remember('host')", "this host", "dialog.remember_host", footer=False),
    Key("4", "remember('pattern')", "pattern", "dialog.remember_pattern", footer=False),
)
"""Every dialog's keys (the remember scopes a dialog offers are its ``SCOPES``)."""

FORMS: Table = (Key("ctrl+s", "submit_form", "send", "dialog.submit_form", "send the form"),)

REQUEST_DIALOG: Table = (
    Key("c", "decide('continue')", "continue", "dialog.continue"),
    Key("x", "decide('cancel')", "cancel", "dialog.cancel"),
    Key("r", "open_form('redirect')", "redirect", "dialog.redirect", "redirect (307)"),
    Key("w", "open_form('rewrite')", "rewrite", "dialog.rewrite", "rewrite upstream"),
    Key("m", "open_form('respond')", "respond", "dialog.respond"),
    Key("e", "open_form('edit')", "edit", "dialog.edit", "edit and continue"),
)

RESPONSE_DIALOG: Table = (
    Key("c", "decide('continue')", "continue", "dialog.continue", "pass the response on"),
    Key("x", "decide('cancel')", "cancel", "dialog.cancel"),
    Key("m", "open_form('respond')", "respond", "dialog.respond", "respond with something else"),
    Key("e", "open_form('upstream')", "edit response", "dialog.edit_response",
        "edit upstream's response"),
)  # fmt: skip

REDIRECT_DIALOG: Table = (
    Key("c,f", "decide('follow')", "follow", "dialog.follow"),
    Key("w", "open_form('rewrite')", "rewrite", "dialog.rewrite", "rewrite the Location"),
    Key("x", "decide('cancel')", "cancel", "dialog.cancel"),
)

AUTH_DIALOG: Table = (
    Key("x", "decide('cancel')", "cancel (pass the challenge on)", "dialog.cancel"),
    Key("enter", "confirm", "send credentials", "dialog.confirm",
        "send the username and password"),
)  # fmt: skip

CERTIFICATE_DIALOG: Table = (
    Key("y", "decide('allow')", "allow", "dialog.allow"),
    Key("n", "decide('reject')", "reject", "dialog.reject"),
)

# -- the rules screen ----------------------------------------------------------------------

RULES_TABLE: Table = (Key("enter", "screen.edit_rule", "edit", "rules.edit"),)

RULES_SCREEN: Table = (
    Key("space", "toggle_rule", "on/off", "rules.toggle", "rule on/off"),
    Key("d", "delete_rule", "delete", "rules.delete"),
    Key("K,shift+k", "move_rule(-1)", "move up", "rules.move_up", shown="K"),
    Key("J,shift+j", "move_rule(1)", "move down", "rules.move_down", shown="J"),
    Key("s", "save_rule", "save to file", "rules.save",
        "save an unsaved rule (a breakpoint) to the file"),
    Key("escape", "back", "back", "rules.back", "back; every change is already saved"),
)  # fmt: skip

HELP_SECTIONS: tuple[tuple[str, Table], ...] = (
    ("flow list", tuple(key for key in FLOW_LIST if key.id != "waylay.close_detail")),
    ("attached screen", (
        Key("q", "", "", "", "in a screen of waylay attach: detach, the proxy goes on"),
        *ATTACHED,
    )),
    ("details", DETAIL),
    ("event log", EVENT_LOG),
    ("edit form (D)", REQUEST_EDITOR),
    ("anywhere", (*APP, Key("ctrl+p", "command_palette", "palette", "", "command palette"))),
    ("request dialog", REQUEST_DIALOG),
    ("response dialog", RESPONSE_DIALOG),
    ("redirect dialog", REDIRECT_DIALOG),
    ("auth dialog", AUTH_DIALOG),
    ("certificate dialog", CERTIFICATE_DIALOG),
    ("dialogs", (
        Key("1,2,3,4", "", "", "", "remember: once, this URL, this host, a pattern",
            shown="1 2 3 4"),
        DIALOG[1],
        *FORMS,
    )),
    ("rules screen", (*RULES_TABLE, *RULES_SCREEN)),
)  # fmt: skip
"""(where, keys) for the help screen, in the order it lists them."""


def keys_markdown() -> str:
    """The keys as Markdown tables, one per place (docs/keys.md holds this text)."""
    lines: list[str] = []
    for place, section in HELP_SECTIONS:
        lines += [f"### {place}", "", "| key | does | binding id |", "|---|---|---|"]
        for key in section:
            shown = key.key_text.replace("|", "\\|")
            binding = f"`{key.id}`" if key.id else ""
            lines.append(f"| `{shown}` | {key.words} | {binding} |")
        lines.append("")
    return "\n".join(lines)
