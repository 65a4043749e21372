"""The header: where the proxy listens, how much traffic, and what is in force."""

from __future__ import annotations

from pathlib import Path

from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget

SEPARATOR = ("  │  ", "$text-muted")


def short_path(path: str | Path | None) -> str:
    """A path as people write it: the home folder as `~`."""
    if not path:
        return ""
    text = str(path)
    home = str(Path.home())
    if home not in ("", "/") and (text == home or text.startswith(home + "/")):
        return "~" + text[len(home) :]
    return text


class WaylayHeader(Widget):
    """Two lines: the proxy and its traffic; then the rules file, breakpoint and filter.

    Every field is a reactive; the app sets them and the header re-renders.
    """

    DEFAULT_CSS = """
    WaylayHeader {
        dock: top;
        height: 2;
        padding: 0 1;
        background: $panel;
        color: $foreground;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    address: reactive[str] = reactive("")
    """Where the proxy listens, e.g. `http://127.0.0.1:8080`."""
    mode: reactive[str] = reactive("")
    """mitmproxy's mode: `regular`, `upstream:URL`, `reverse:URL`, `socks5`."""
    flow_count: reactive[int] = reactive(0)
    """Flows the screen holds."""
    shown_count: reactive[int | None] = reactive(None)
    """Rows the filter lets through, or None without a filter."""
    paused_count: reactive[int] = reactive(0)
    """Flows waiting for a decision."""
    rules_path: reactive[str] = reactive("")
    """The rules file, or "" when there is none."""
    rules_state: reactive[str] = reactive("")
    """`3 rules`, or `error: rules.toml:4:1: …` while the file does not load."""
    breakpoint: reactive[str] = reactive("")
    """The request breakpoint's spec, "" for none."""
    breakpoints_on: reactive[bool] = reactive(True)
    """Whether breakpoints pause requests."""
    filter_text: reactive[str] = reactive("")
    """The flow list's filter, "" for none."""
    filter_progress: reactive[str] = reactive("")
    """How far a filter being applied has got ("40%"), "" when none is running."""
    follow: reactive[bool] = reactive(False)
    """Whether the flow list follows new flows (`F`)."""
    auto_open: reactive[bool] = reactive(False)
    """Whether dialogs open by themselves when something pauses (`O`)."""
    marked_only: reactive[bool] = reactive(False)
    """Whether the list shows marked flows only (`M`)."""
    sort_label: reactive[str] = reactive("")
    """The column the list is sorted by, "" for arrival order."""
    info: reactive[tuple[tuple[str, str], ...]] = reactive(())
    """Extra label/value pairs shown after the counts (the app's `title_info`)."""

    def render(self) -> Content:
        return Content("\n").join([self._proxy_line(), self._rules_line()])

    def _proxy_line(self) -> Content:
        address: list[str | tuple[str, str]] = [(self.address or "starting…", "bold")]
        if self.mode:
            address += ["  ", (self.mode, "$text-muted")]
        counts: list[str | tuple[str, str]] = [
            f"{self.flow_count} flow{'' if self.flow_count == 1 else 's'}"
        ]
        if self.shown_count is not None:
            counts.append((f" ({self.shown_count} shown)", "$text-muted"))
        paused: tuple[str, str]
        if self.paused_count:
            paused = (f"⏸ {self.paused_count} paused", "bold $text-warning")
        else:
            paused = ("0 paused", "$text-muted")
        modes = [
            name
            for name, on in (
                ("follow", self.follow),
                ("auto-open", self.auto_open),
                ("marked only", self.marked_only),
            )
            if on
        ]
        if self.sort_label:
            modes.append(f"sorted by {self.sort_label}")
        parts: list[str | tuple[str, str]] = [("waylay", "bold $text-accent"), "  "]
        parts += [*address, SEPARATOR, *counts, SEPARATOR, paused]
        if modes:
            parts += [SEPARATOR, (", ".join(modes), "bold $text-accent")]
        for label, value in self.info:
            parts += [SEPARATOR, (f"{label} ", "$text-muted"), value]
        line = Content.assemble(*parts)
        room = self.content_region.width
        if room and line.cell_length > room:
            # narrow: the paused count first, so that it is never cut off
            parts = [paused, SEPARATOR, *counts]
            if modes:
                parts += [SEPARATOR, (", ".join(modes), "bold $text-accent")]
            parts += [SEPARATOR, *address]
            line = Content.assemble(*parts)
        return line

    def _rules_line(self) -> Content:
        parts: list[str | tuple[str, str]] = [("rules ", "$text-muted")]
        if self.rules_path:
            parts.append(short_path(self.rules_path))
            if self.rules_state:
                failed = self.rules_state.startswith("error")
                parts += [" · ", (self.rules_state, "bold $text-error" if failed else "")]
        else:
            parts.append(("none", "$text-muted"))
        parts += [SEPARATOR, ("breakpoint ", "$text-muted")]
        parts.append((self.breakpoint, "bold") if self.breakpoint else ("none", "$text-muted"))
        if self.breakpoints_on:
            parts.append((" (on)", "$text-success"))
        else:
            parts.append((" (off)", "bold $text-warning"))
        if self.filter_text:
            parts += [
                SEPARATOR,
                ("filter ", "$text-muted"),
                (self.filter_text, "bold $text-accent"),
            ]
        if self.filter_progress:
            parts.append((f" (filtering… {self.filter_progress})", "$text-warning"))
        return Content.assemble(*parts)
