"""`PYTHONPATH=. python reports/fit/ml-100k-60/app_check.py STORE MODEL DB`: the real app on a MovieLens store and its seller fit model, through streamlit.testing:
sign in as a manager, open one held-out client, print what the page shows (ids only)."""
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, os.getcwd())
os.environ.update(SELLER_DATA=sys.argv[1], SELLER_MODEL=sys.argv[2], SELLER_DB_PATH=sys.argv[3])
from tests.test_app import card_titles, make_accounts, notices, open_client, page_text  # noqa: E402

make_accounts(sys.argv[3])
client = json.loads((Path(sys.argv[2]) / "split.json").read_text())["test"][0]
at = open_client(client)
print("client", client)
print("cards:", card_titles(at))
print("notices:", notices(at))
print("captions:", [c.value for c in at.caption][:12])
