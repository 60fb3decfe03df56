"""The page: the template beside this file with the collected data inlined as JSON."""
import json
import os

TEMPLATE = os.path.join(os.path.dirname(__file__), "page.html")


def render(data):
    """The HTML text: no external resources, the data in the page's one script."""
    with open(TEMPLATE, encoding="utf-8") as f:
        page = f.read()
    blob = json.dumps(data, ensure_ascii=True, separators=(",", ":"))
    blob = blob.replace("</", "<\\/")         # no "</script>" inside the script
    return page.replace("/*DATA*/null", blob, 1)
