"""One self-contained HTML page with every step: images are embedded as data URIs and the
page loads nothing from the network."""

import base64
import html
import time

from ..language import words


def _data_uri(data, mime):
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def page(title, sections, summary=None, notes=(), language="en"):
    """``sections``: [(heading, text, [(name, bytes, mime)])] in order."""
    text = words(language)
    made = text["page.made"].format(date=time.strftime("%Y-%m-%d %H:%M"))
    parts = [f"<h1>{html.escape(title)}</h1>", f"<p class=meta>{html.escape(made)}</p>"]
    parts += [f"<p class=note>{html.escape(note)}</p>" for note in notes]
    for heading, explanation, images in sections:
        parts.append(f"<section><h2>{html.escape(heading)}</h2><p>{html.escape(explanation)}</p>")
        for name, data, mime in images:
            parts.append(f'<figure><img alt="{html.escape(name)}" src="{_data_uri(data, mime)}">'
                         f"<figcaption>{html.escape(name)}</figcaption></figure>")
        parts.append("</section>")
    if summary:
        parts.append(f"<section><h2>{html.escape(text['page.model'])}</h2><pre>{html.escape(summary)}</pre></section>")
    body = "\n".join(parts)
    return f"""<!DOCTYPE html>
<html lang="{language}"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }}
h1 {{ font-size: 1.6em; }} h2 {{ font-size: 1.2em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }}
figure {{ margin: 1em 0; }} img {{ max-width: 100%; height: auto; }}
figcaption, .meta {{ color: #666; font-size: .85em; }} .note {{ background: #fff8e1; padding: .5em; }}
pre {{ background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: .85em; }}
</style></head>
<body>
{body}
</body></html>
"""
