"""The fictional luxury group behind sample_data/: vocabulary, catalogue and client book.

Everything here is invented (maisons, models, people). Two item attributes the files do not
carry as columns drive the planted intents and are derived from columns through the tables
below: an item's style level (from its collection, 0 = classic .. 1 = avant-garde) and the
occasions it suits (from its subcategory). sample_data/README.md restates both tables.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

UTC = timezone.utc
COLD_START = datetime(2026, 9, 1, tzinfo=UTC)  # items launched on/after this are cold-start
HORIZON = datetime(2026, 10, 31, tzinfo=UTC)  # every event happens strictly before this

# maison -> (signature craft, weight per category: which categories the house makes)
MAISONS = {
    "Aubrelle": ("saddle-stitched leather", {"handbags": 6, "small leather goods": 6, "shoes": 1, "silks": 1}),
    "Castelmoire": ("hand-rolled silk", {"silks": 6, "jewellery": 3, "ready-to-wear": 2, "handbags": 1}),
    "Veyrac": ("sculptural tailoring", {"ready-to-wear": 6, "shoes": 5, "handbags": 2, "small leather goods": 1}),
    "Hallorand": ("Geneva watchmaking", {"watches": 6, "jewellery": 4, "small leather goods": 1}),
    "Noctelle": ("evening couture and perfumery", {"fragrance": 6, "ready-to-wear": 2, "handbags": 2, "jewellery": 1, "shoes": 1}),
}

# category -> (item count, [(subcategory, occasions it suits)])
CATEGORIES = {
    "handbags": (64, [("tote", ()), ("shoulder bag", ()), ("top-handle bag", ()), ("crossbody bag", ("travel",)),
                      ("evening clutch", ("gala", "wedding")), ("weekender", ("travel",)), ("bucket bag", ()), ("mini bag", ("wedding",))]),
    "small leather goods": (48, [("wallet", ()), ("card holder", ()), ("key pouch", ()), ("passport holder", ("travel",)),
                                 ("belt", ()), ("bag charm", ()), ("cosmetic pouch", ("travel",))]),
    "silks": (40, [("carré scarf", ()), ("twilly", ()), ("silk shawl", ("wedding", "gala")), ("stole", ("travel",)), ("pocket square", ("wedding",))]),
    "shoes": (40, [("pumps", ()), ("satin pumps", ("gala",)), ("loafers", ("travel",)), ("ankle boots", ()), ("sandals", ()),
                   ("sneakers", ("travel",)), ("kitten heels", ("wedding",))]),
    "ready-to-wear": (48, [("evening gown", ("gala",)), ("cocktail dress", ("wedding", "gala")), ("trench coat", ("travel",)),
                           ("overcoat", ()), ("blazer", ()), ("knit sweater", ()), ("blouse", ()), ("tailored trousers", ()),
                           ("travel wrap", ("travel",))]),
    "jewellery": (40, [("pendant necklace", ()), ("bangle", ()), ("cocktail ring", ("gala",)), ("pearl earrings", ("wedding",)),
                       ("high jewellery necklace", ("gala",)), ("charm bracelet", ()), ("hoop earrings", ())]),
    "watches": (26, [("dress watch", ("gala", "wedding")), ("chronograph", ()), ("travel GMT watch", ("travel",)), ("jewellery watch", ("gala",))]),
    "fragrance": (24, [("eau de parfum", ()), ("travel spray", ("travel",)), ("extrait", ("gala",)), ("scented candle", ())]),
}
ACCESSORIES = ("small leather goods", "silks", "shoes", "jewellery")  # what complements a bag

MATERIALS = {
    "handbags": ["calfskin", "grained calfskin", "lambskin", "suede", "canvas", "crocodile", "ostrich"],
    "small leather goods": ["calfskin", "grained calfskin", "lambskin", "suede", "crocodile"],
    "silks": ["silk twill", "silk chiffon", "cashmere-silk", "silk satin"],
    "shoes": ["calfskin", "suede", "satin", "patent leather"],
    "ready-to-wear": ["wool crepe", "cashmere", "silk crepe", "tweed", "lambskin", "linen"],
    "jewellery": ["diamond pavé", "pearl", "onyx", "enamel", "lapis lazuli"],
    "watches": ["steel", "ceramic", "titanium", "alligator leather"],
    "fragrance": ["amber", "iris", "vetiver", "rose", "neroli", "oud"],
}
EXOTIC = {"crocodile", "ostrich"}
HARDWARE = ("gold", "palladium", "rose gold", "ruthenium")
HAS_HARDWARE = {"handbags": 1.0, "small leather goods": 0.9, "shoes": 0.6, "jewellery": 1.0, "watches": 1.0}

# collection -> style level (0 classic .. 1 avant-garde); also the style-evolution axis
COLLECTIONS = {"Heritage": 0.0, "Signature": 0.2, "Riviera": 0.4, "Nocturne": 0.6, "Prism": 0.8, "Fracture": 1.0}
CLASSIC_COLOURS = ["Noir", "Ivory", "Cognac", "Bordeaux", "Midnight Blue", "Taupe", "Forest Green", "Blush"]
BOLD_COLOURS = ["Fuchsia", "Electric Blue", "Acid Yellow", "Lacquer Red", "Silver Metallic"]
BOTTLE_COLOURS = ["Amber", "Smoked Grey", "Clear", "Rose"]

# (season, launch date of its drop); older seasons are weighted up so early histories have stock
SEASONS = [("SS24", datetime(2024, 1, 22, tzinfo=UTC), 0.30), ("AW24", datetime(2024, 7, 15, tzinfo=UTC), 0.20),
           ("SS25", datetime(2025, 1, 20, tzinfo=UTC), 0.15), ("AW25", datetime(2025, 7, 14, tzinfo=UTC), 0.12),
           ("SS26", datetime(2026, 1, 19, tzinfo=UTC), 0.12), ("AW26", datetime(2026, 7, 13, tzinfo=UTC), 0.11)]
PRICE_RANGE = {"handbags": (2800, 9500), "small leather goods": (350, 1400), "silks": (390, 1650), "shoes": (750, 1600),
               "ready-to-wear": (1100, 7500), "jewellery": (1500, 28000), "watches": (6500, 48000), "fragrance": (150, 420)}
MODELS = ["Linnea", "Oriel", "Sablon", "Calisse", "Verdane", "Ombrine", "Soline", "Marcelle", "Aster", "Belvane", "Corisande",
          "Delphe", "Eulalie", "Fanchon", "Galatée", "Hortense", "Isaure", "Josselin", "Lisière", "Mirelle", "Nacre", "Opaline",
          "Perrine", "Quillan", "Roseline", "Séverine", "Tiphaine", "Ursuline", "Valmonde", "Zéphire", "Arcane", "Boréale", "Cendre",
          "Dune", "Escale", "Faille", "Givre", "Halo", "Iliade", "Jaspe"]
FIRST_NAMES = ["Aurélie", "Camille", "Hélène", "Sofia", "Yuki", "Mei", "Priya", "Amara", "Léa", "Olivia", "Isabella", "Chiara",
               "Ingrid", "Nadia", "Leila", "Hana", "Clara", "Beatrice", "Valentina", "Elena", "Margaux", "Victoire", "Ananya",
               "Zara", "Noor", "Jun", "Kenji", "Thomas", "Alexandre", "Marco", "Daniel", "Omar", "Luca", "James", "Hugo",
               "Rafael", "Wei", "Arjun", "Felix", "Ines"]
LAST_NAMES = ["Marchetti", "Ashworth", "Tanaka", "Okafor", "Lindqvist", "Moreau", "Castellano", "Haddad", "Kowalski",
              "Nakamura", "Fontaine", "Rahman", "Petrova", "Albrecht", "Serrano", "Whitfield", "Osei", "Yamamoto", "Brennan",
              "Duval", "Kaur", "Lefèvre", "Sato", "Rinaldi", "Vasquez", "Holm", "Chen", "Park", "Mehta", "Ferreira"]
BOUTIQUES = ["Paris Rue Saint-Honoré", "Paris Avenue Montaigne", "Tokyo Ginza", "New York Madison", "London Bond Street",
             "Milan Via Montenapoleone", "Hong Kong Central", "Seoul Cheongdam", "Dubai Downtown"]
TIERS = [("Platinum", 0.2), ("Gold", 0.35), ("Silver", 0.45)]


@dataclass
class Item:
    item_id: str
    name: str
    maison: str
    category: str
    subcategory: str
    color: str
    material: str
    hardware: str
    collection: str
    season: str
    price: float
    description: str
    launched_at: datetime
    one_of_a_kind: bool
    occasions: tuple[str, ...]  # derived from subcategory, not written

    @property
    def style_level(self) -> float:
        return COLLECTIONS[self.collection]

    @property
    def cold(self) -> bool:
        return self.launched_at >= COLD_START


@dataclass
class Client:
    client_id: str
    display_name: str
    tier: str
    home_boutique: str
    consent_marketing: bool
    start: datetime  # first event
    end: datetime  # last event
    maisons: dict[str, float]  # taste: weight per maison for organic browsing


PLURAL = {"pumps", "satin pumps", "loafers", "ankle boots", "sandals", "sneakers", "kitten heels", "tailored trousers",
          "pearl earrings", "hoop earrings"}


def the(item: Item) -> str:
    """'the <name>', made singular for pairs so that verbs agree ('the pair of ... Loafers sits')."""
    return f"the pair of {item.name}" if item.subcategory in PLURAL else f"the {item.name}"


def this(item: Item) -> str:
    """'this <subcategory>': how a text names the item it recommends. The card above the text
    already shows the full name, so the text spends its words on the client's history instead."""
    return f"this pair of {item.subcategory}" if item.subcategory in PLURAL else f"this {item.subcategory}"


def style_word(level: float) -> str:
    return "classic" if level < 0.3 else "contemporary" if level < 0.7 else "avant-garde"


def _weighted(rng: random.Random, pairs):
    keys, weights = zip(*pairs)
    return rng.choices(keys, weights)[0]


def _title(phrase: str) -> str:
    """Title case that keeps acronyms and French particles: 'Travel GMT Watch', 'Eau de Parfum'."""
    return " ".join(w if w.isupper() or w == "de" else w.title() for w in phrase.split())


def _a(phrase: str) -> str:
    """The indefinite article: 'an ivory', 'a pair of loafers'."""
    if phrase in PLURAL:
        return "a pair of " + phrase
    return ("an " if phrase[0].lower() in "aeiou" else "a ") + phrase


def _describe(rng: random.Random, it: Item, craft: str) -> str:
    """One to three sentences drawn from interchangeable parts, so descriptions do not repeat."""
    colour, mat, sub = it.color.lower(), it.material, it.subcategory
    if it.category == "fragrance":
        make = rng.choice([f"{_a(mat).capitalize()}-led composition in {_a(colour)} bottle.",
                           f"The {sub} opens on {mat} and settles close to the skin.",
                           f"{it.maison} builds this {sub} around {mat}, warm and unhurried."])
    elif it.category == "watches":
        make = rng.choice([f"The {sub} pairs {_a(colour)} dial with {mat}.",
                           f"{_a(colour).capitalize()} dial and {mat} define this {sub}, regulated by hand.",
                           f"{it.maison}'s {craft} shows in this {sub} with {_a(colour)} dial in {mat}."])
    elif it.category == "jewellery":
        make = rng.choice([f"{_a(sub).capitalize()} setting {mat} against {it.hardware}, with {_a(colour)} accent.",
                           f"{mat.capitalize()} and a touch of {colour}, set in {it.hardware}.",
                           f"{_a(sub).capitalize()} in {mat}, finished with {colour} detailing by hand."])
    elif it.category in ("silks", "ready-to-wear"):
        make = rng.choice([f"{_a(sub).capitalize()} in {colour} {mat}, cut and finished by hand.",
                           f"{mat.capitalize()} in {colour}, shaped into {_a(sub)}.",
                           f"{it.maison}'s {craft} shapes this {colour} {mat} {sub}.",
                           f"Offered in {colour} {mat}, with seams and edges finished by hand."])
    elif it.category == "shoes":  # every shoe subcategory is a pair
        make = rng.choice([f"Cut in {colour} {mat}, these {sub} sit on a slim, sculpted sole.",
                           f"{_a(sub).capitalize()} in {colour} {mat}, lasted and stitched by hand.",
                           f"{it.maison}'s {craft} shows in these {colour} {mat} {sub}."])
    else:  # leather: handbags, small leather goods
        make = rng.choice([f"Cut in {colour} {mat}, the {sub} keeps a soft, structured line.",
                           f"{_a(sub).capitalize()} in {mat}, finished in {colour} by hand.",
                           f"{it.maison}'s {craft} shows in this {colour} {mat} {sub}.",
                           f"This {sub} pairs {mat} with {_a(colour)} tone that deepens with wear.",
                           f"Made in {mat}, the {sub} comes in {colour} with tonal edges."])
    extras = []
    if it.hardware != "none":
        extras.append(rng.choice([f"Fittings are plated in {it.hardware}.", f"The {it.hardware} hardware is polished by hand.",
                                  f"Details in {it.hardware} catch the light."]))
    level = style_word(it.style_level)
    extras.append(rng.choice({
        "classic": [f"From the {it.collection} collection, it keeps the house's classic proportions.",
                    f"A {it.collection} piece, quiet and timeless."],
        "contemporary": [f"The {it.collection} collection updates a house shape with cleaner lines.",
                         f"Part of {it.collection}, it brings a modern ease to a familiar form."],
        "avant-garde": [f"From {it.collection}, it breaks the silhouette into bold, asymmetric planes.",
                        f"The {it.collection} line pushes the form somewhere unexpected."],
    }[level]))
    for occ in it.occasions:
        extras.append({"gala": "Made for black-tie evenings.", "wedding": "A graceful choice for wedding celebrations.",
                       "travel": "Built for long journeys and light packing."}[occ])
    rng.shuffle(extras)
    sentences = [make] + extras[: rng.randint(0, 2)]
    if it.one_of_a_kind:
        sentences = sentences[:2] + [rng.choice(["A one-of-a-kind piece; no other will be made.",
                                                 "Unique: the atelier made this piece once."])]
    return " ".join(sentences)


def build_items(rng: random.Random) -> list[Item]:
    items: list[Item] = []
    names: set[str] = set()
    for category, (count, subcats) in CATEGORIES.items():
        makers = [(m, w[category]) for m, (_, w) in MAISONS.items() if category in w]
        for _ in range(count):
            maison = _weighted(rng, makers)
            sub, occasions = rng.choice(subcats)
            collection = rng.choice(list(COLLECTIONS))
            bold = rng.random() < COLLECTIONS[collection] * 0.7  # avant-garde pieces favour bold colours
            color = rng.choice(BOTTLE_COLOURS if category == "fragrance" else BOLD_COLOURS if bold else CLASSIC_COLOURS)
            material = rng.choice(MATERIALS[category])
            hardware = rng.choice(HARDWARE) if rng.random() < HAS_HARDWARE.get(category, 0.0) else "none"
            cold = rng.random() < 0.10
            if cold:
                season, launched = "AW26", COLD_START + timedelta(days=rng.uniform(0, 35))
            else:
                season, drop, _ = rng.choices(SEASONS, [s[2] for s in SEASONS])[0]
                launched = drop + timedelta(days=rng.uniform(0, 40))
            unique = category in ("handbags", "jewellery", "watches", "ready-to-wear") and rng.random() < 0.08
            lo, hi = PRICE_RANGE[category]
            price = rng.uniform(lo, hi) * (3.0 if material in EXOTIC else 1.0) * (2.5 if unique else 1.0)
            while True:
                model = rng.choice(MODELS)
                if category == "fragrance":
                    name = f"{model} {_title(material)} {_title(sub)}"
                else:
                    name = f"{model} {_title(sub)} in {color} {_title(material)}"
                if name not in names:
                    names.add(name)
                    break
            it = Item(f"I{len(items) + 1:04d}", name, maison, category, sub, color, material, hardware, collection, season,
                      float(round(price, -1)), "", launched.replace(microsecond=0), unique, occasions)
            it.description = _describe(rng, it, MAISONS[maison][0])
            items.append(it)
    return items


def build_clients(rng: random.Random, n: int) -> list[Client]:
    pairs = [(f, l) for f in FIRST_NAMES for l in LAST_NAMES]
    rng.shuffle(pairs)
    clients = []
    for i in range(n):
        # about a third of histories run into October 2026, the rest end before the cold-start drop
        if rng.random() < 0.35:
            end = datetime(2026, 10, 1, tzinfo=UTC) + timedelta(days=rng.uniform(0, 29))
        else:
            end = datetime(2026, 4, 15, tzinfo=UTC) + timedelta(days=rng.uniform(0, 135))
        start = end - timedelta(days=rng.uniform(200, 715))  # 6-24 months once the last event lands
        favourites = rng.sample(list(MAISONS), 2)
        maisons = {m: (4.0 if m == favourites[0] else 2.0 if m == favourites[1] else 1.0) for m in MAISONS}
        clients.append(Client(f"C{i + 1:03d}", " ".join(pairs[i]), _weighted(rng, TIERS), rng.choice(BOUTIQUES),
                              rng.random() < 0.7, start.replace(microsecond=0), end.replace(microsecond=0), maisons))
    return clients
