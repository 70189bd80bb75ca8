"""The title vocabulary shared by the image path and the titles-only path.

Every phrase list is a tuple of ``(text, weight)``: the canonical spelling carries most of the
weight, synonyms less, misspellings and HTML/Unicode oddities a little. The colour palette lives
here too, because a title names the colour that the image is drawn in.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

Phrases = tuple[tuple[str, float], ...]

# --------------------------------------------------------------------------------------------
# Attribute phrases for the classes the renderer draws natively (conf/taxonomy.toml defaults).
# --------------------------------------------------------------------------------------------

ATTRIBUTE_PHRASES: dict[str, dict[str, Phrases]] = {
    "hemline": {
        "mini": (("Mini", 6), ("mini", 2), ("Short", 2), ("Above Knee", 1), ("Mni", 0.2)),
        "knee_length": (
            ("Knee Length", 5),
            ("Knee-Length", 3),
            ("knee length", 1),
            ("Kneelength", 0.5),
            ("Knee Lenght", 0.3),
        ),
        "midi": (("Midi", 6), ("midi", 2), ("Mid-Calf", 1.5), ("Midi Length", 1), ("Mdi", 0.2)),
        "maxi": (("Maxi", 5), ("Long", 2), ("Floor Length", 1.5), ("Floor-Length", 1), ("Maxy", 0.2)),
        "high_low": (("High Low", 4), ("High-Low", 3), ("Hi-Lo", 1.5), ("Asymmetrical Hem", 1), ("Hi Low", 0.8)),
    },
    "neck_style": {
        "sweetheart": (("Sweetheart", 5), ("Sweetheart Neckline", 3), ("Sweet Heart", 0.6), ("Sweethart", 0.3)),
        "off_the_shoulder": (
            ("Off Shoulder", 4),
            ("Off-the-Shoulder", 3),
            ("Off The Shoulder", 2),
            ("Offshoulder", 0.8),
            ("Bardot", 0.6),
            ("Off-Shoulder", 1.5),
        ),
        "v_neck": (("V-Neck", 5), ("V Neck", 3), ("Vneck", 1), ("v-neck", 1), ("Deep V", 1), ("V-Nek", 0.2)),
        "one_shoulder": (("One Shoulder", 5), ("One-Shoulder", 3), ("Asymmetric Shoulder", 0.8), ("One Sholder", 0.3)),
        "high_neck": (("High Neck", 5), ("High-Neck", 2), ("Mock Neck", 2), ("Highneck", 0.6)),
        "halter": (("Halter", 5), ("Halter Neck", 3), ("Halterneck", 1), ("Haltar", 0.3)),
        "boat_neck": (("Boat Neck", 5), ("Boatneck", 2), ("Bateau", 1.5), ("Slash Neck", 1), ("Boat-Neck", 1)),
        "square_neck": (("Square Neck", 5), ("Square-Neck", 2), ("Squareneck", 0.7), ("Sqaure Neck", 0.3)),
        "scoop_neck": (("Scoop Neck", 5), ("Scoop-Neck", 2), ("Scoopneck", 0.8), ("U-Neck", 1), ("Scoop", 1)),
        "collared": (
            ("Collared", 4),
            ("Shirt Collar", 3),
            ("Collar", 2),
            ("Button-Down Collar", 1),
            ("Peter Pan Collar", 1),
            ("Colared", 0.3),
        ),
        "turtle_neck": (
            ("Turtleneck", 5),
            ("Turtle Neck", 3),
            ("Turtle-Neck", 1),
            ("Roll Neck", 1.5),
            ("Polo Neck", 0.8),
            ("Turtlenek", 0.2),
        ),
    },
    "pattern": {
        "solid": (("Solid", 5), ("Solid Color", 3), ("Plain", 2), ("Solid Colour", 1)),
        "floral": (
            ("Floral", 6),
            ("Floral Print", 4),
            ("Flower Print", 2),
            ("Flowered", 1),
            ("Flroal", 0.4),
            ("Florals", 0.6),
        ),
        "stripe": (("Striped", 5), ("Stripe", 3), ("Stripes", 1.5), ("Pinstripe", 0.8), ("Strpied", 0.3)),
        "plaid": (("Plaid", 5), ("Tartan", 2), ("Checked", 1.5), ("Gingham", 1.5), ("Check", 1), ("Plad", 0.3)),
        "polka_dot": (("Polka Dot", 5), ("Polka-Dot", 2), ("Dotted", 1.5), ("Polka Dots", 1.5), ("Polkadot", 0.8)),
        "animal": (
            ("Leopard Print", 4),
            ("Animal Print", 4),
            ("Zebra Print", 2),
            ("Leopard", 1.5),
            ("Snake Print", 0.8),
            ("Cheetah", 0.6),
            ("Leapord", 0.3),
        ),
        "geometric": (
            ("Geometric", 5),
            ("Geometric Print", 3),
            ("Geo Print", 1.5),
            ("Abstract Geometric", 1),
            ("Geomteric", 0.3),
        ),
        "ombre": (("Ombre", 5), ("Ombr\u00e9", 2), ("Gradient", 2), ("Dip Dye", 1), ("Ombre Gradient", 0.8)),
        "tie_dye": (("Tie Dye", 5), ("Tie-Dye", 3), ("Tiedye", 1), ("Tye Dye", 0.5)),
        "paisley": (("Paisley", 5), ("Paisley Print", 3), ("Boho Paisley", 1.5), ("Pasiley", 0.3)),
    },
    "silhouette": {
        "fit_and_flare": (
            ("Fit & Flare", 4),
            ("Fit and Flare", 3),
            ("A-Line", 4),
            ("A Line", 2),
            ("Skater", 2),
            ("Fit &amp; Flare", 1),
            ("Swing", 1),
            ("Fit-and-Flare", 1),
        ),
        "fitted": (("Bodycon", 5), ("Fitted", 3), ("Sheath", 2), ("Pencil", 1.5), ("Slim Fit", 1), ("Bodycone", 0.3)),
        "straight": (("Shift", 5), ("Straight", 3), ("T-Shirt", 1.5), ("Tunic", 1.5), ("Straight Cut", 1)),
        "maxi": (("Maxi", 6), ("Long Maxi", 2), ("Boho Maxi", 1.5), ("Flowy Maxi", 1), ("Maxi-Length", 0.5)),
        "gown": (
            ("Gown", 4),
            ("Evening Gown", 3),
            ("Ball Gown", 2),
            ("Formal Gown", 1.5),
            ("Prom", 1.5),
            ("Gwon", 0.2),
        ),
    },
    "sleeve_type": {
        "sleeveless": (
            ("Sleeveless", 6),
            ("Tank", 1.5),
            ("Strappy", 1),
            ("No Sleeve", 0.5),
            ("Sleevless", 0.4),
            ("Spaghetti Strap", 1),
        ),
        "cap": (("Cap Sleeve", 5), ("Cap Sleeves", 2), ("Cap-Sleeve", 1.5), ("Capsleeve", 0.5)),
        "short": (("Short Sleeve", 6), ("Short Sleeves", 2), ("Short-Sleeve", 2), ("S/S", 0.6), ("Shortsleeve", 0.4)),
        "three_quarter": (
            ("3/4 Sleeve", 5),
            ("3/4 Sleeves", 2),
            ("Three Quarter Sleeve", 2),
            ("Three-Quarter Sleeve", 1),
            ("Elbow Sleeve", 1),
            ("3/4 Slv", 0.3),
        ),
        "long": (("Long Sleeve", 6), ("Long Sleeves", 2), ("Long-Sleeve", 2), ("Longsleeve", 0.6), ("L/S", 0.4)),
    },
}

# How often a title names each attribute, by product type (vendors do not name everything).
MENTION_PROB: dict[str, dict[str, float]] = {
    "DRESS": {"hemline": 0.45, "neck_style": 0.45, "pattern": 0.6, "silhouette": 0.55, "sleeve_type": 0.5},
    "SKIRT": {"hemline": 0.5, "neck_style": 0.0, "pattern": 0.6, "silhouette": 0.4, "sleeve_type": 0.0},
    "SHIRT": {"hemline": 0.0, "neck_style": 0.45, "pattern": 0.6, "silhouette": 0.0, "sleeve_type": 0.55},
}
MARKER_MENTION_PROB = 0.5

# --------------------------------------------------------------------------------------------
# Colours: (canonical name, RGB, title variants)
# --------------------------------------------------------------------------------------------

COLOURS: tuple[tuple[str, tuple[int, int, int], Phrases], ...] = (
    ("black", (24, 24, 27), (("Black", 8), ("black", 1), ("Jet Black", 1))),
    ("white", (244, 243, 238), (("White", 8), ("Off White", 1), ("Off-White", 1))),
    ("ivory", (236, 228, 205), (("Ivory", 5), ("Cream", 3), ("Cr\u00e8me", 0.8))),
    ("red", (196, 30, 42), (("Red", 8), ("Scarlet", 1), ("Cherry Red", 1))),
    ("burgundy", (110, 22, 44), (("Burgundy", 5), ("Wine Red", 2), ("Wine", 2), ("Maroon", 1), ("Burgandy", 0.4))),
    ("pink", (236, 120, 165), (("Pink", 8), ("Hot Pink", 2), ("Fuchsia", 1))),
    ("blush", (238, 190, 188), (("Blush", 5), ("Blush Pink", 3), ("Dusty Pink", 2), ("Ros\u00e9", 0.8))),
    ("coral", (240, 120, 95), (("Coral", 8), ("Salmon", 1))),
    ("orange", (236, 128, 32), (("Orange", 8), ("Rust", 1.5), ("Burnt Orange", 1))),
    ("mustard", (214, 170, 40), (("Mustard", 5), ("Mustard Yellow", 3), ("Yellow", 2))),
    ("yellow", (246, 222, 80), (("Yellow", 8), ("Lemon", 1))),
    ("olive", (110, 112, 52), (("Olive", 5), ("Olive Green", 3), ("Army Green", 1.5))),
    ("green", (46, 140, 70), (("Green", 8), ("Kelly Green", 1))),
    ("emerald", (8, 110, 80), (("Emerald", 5), ("Emerald Green", 3), ("Dark Green", 2))),
    ("mint", (160, 220, 190), (("Mint", 5), ("Mint Green", 3), ("Sage", 1.5))),
    ("teal", (20, 125, 130), (("Teal", 8), ("Dark Teal", 1))),
    ("turquoise", (50, 196, 200), (("Turquoise", 5), ("Aqua", 2), ("Turqoise", 0.3))),
    ("sky_blue", (130, 186, 232), (("Sky Blue", 5), ("Light Blue", 3), ("Baby Blue", 2))),
    ("royal_blue", (40, 70, 190), (("Royal Blue", 6), ("Blue", 4), ("Cobalt", 1))),
    ("navy", (26, 36, 80), (("Navy", 5), ("Navy Blue", 4), ("Dark Blue", 1))),
    ("purple", (110, 50, 150), (("Purple", 8), ("Violet", 1), ("Plum", 1))),
    ("lavender", (186, 164, 220), (("Lavender", 5), ("Lilac", 3), ("Light Purple", 1))),
    ("beige", (214, 196, 160), (("Beige", 5), ("Khaki", 2), ("Nude", 2), ("Caf\u00e9 au Lait", 0.5))),
    ("brown", (110, 70, 40), (("Brown", 6), ("Chocolate", 1.5), ("Coffee", 1), ("Camel", 1.5))),
    ("grey", (140, 140, 146), (("Grey", 5), ("Gray", 4), ("Heather Grey", 1))),
    ("charcoal", (62, 64, 70), (("Charcoal", 5), ("Dark Grey", 2), ("Charcoal Gray", 1))),
    ("gold", (200, 164, 84), (("Gold", 5), ("Champagne", 3), ("Metallic Gold", 1))),
    ("silver", (190, 192, 198), (("Silver", 6), ("Metallic Silver", 1))),
)
COLOUR_NAMES: tuple[str, ...] = tuple(c[0] for c in COLOURS)
COLOUR_RGB: tuple[tuple[int, int, int], ...] = tuple(c[1] for c in COLOURS)

# --------------------------------------------------------------------------------------------
# The rest of a vendor title.
# --------------------------------------------------------------------------------------------

BRANDS: Phrases = (
    ("Nordvik", 3),
    ("Saffron Lane", 3),
    ("Maison Olive", 3),
    ("Kira Jo", 2),
    ("Belle \u00c9poque", 2),
    ("Caf\u00e9 Noir", 2),
    ("Zo\u00eb &amp; Co", 1.5),
    ("Zo\u00eb & Co", 1.5),
    ("Ren\u00e9e Studio", 2),
    ("Cr\u00e8me Atelier", 1.5),
    ("LUMIA", 2),
    ("Bloomfield", 2),
    ("Amberly", 2),
    ("Wildflower Co.", 2),
    ("Ostara", 1.5),
    ("Velvet Fern", 1.5),
    ("Harbor &amp; Vine", 1),
    ("Harbor & Vine", 1),
    ("Sol\u00e9na", 1.5),
    ("MIRELLE", 1.5),
    ("Tidewater", 1.5),
    ("Juniper Row", 1.5),
    ("Lark\u2019s Nest", 1),
    ("Copperleaf", 1.5),
    ("Evie Rae", 1.5),
    ("QZUYI", 1),
    ("BTQMLX", 1),
    ("Ms.Lovely", 1),
)
WOMEN: Phrases = (
    ("Women's", 6),
    ("Women\u2019s", 2),
    ("Womens", 3),
    ("Women&#39;s", 0.8),
    ("WOMEN'S", 0.8),
    ("Ladies", 1.5),
    ("Ladies\u2019", 0.5),
    ("Women", 1),
)
FILLERS: Phrases = (
    ("Casual", 5),
    ("Summer", 5),
    ("Party", 4),
    ("Cocktail", 2),
    ("Evening", 2),
    ("Boho", 2),
    ("Beach", 2),
    ("Work", 1.5),
    ("Office", 1),
    ("Wedding Guest", 1.5),
    ("Elegant", 2),
    ("Vintage", 2),
    ("Sexy", 1.5),
    ("Cute", 1.5),
    ("Spring", 1.5),
    ("Holiday", 1),
    ("Club", 1),
    ("Formal", 1),
    ("Flowy", 1.5),
    ("Ruched", 1),
    ("Wrap", 1),
    ("Smocked", 0.8),
    ("Ruffle", 1),
    ("Pleated", 1),
    ("Belted", 1),
    ("Retro", 1),
    ("&quot;Party&quot;", 0.4),
    ("\u201cSummer\u201d", 0.4),
    ("Caf\u00e9", 0.4),
    ("Trendy", 1),
    ("Loose", 1),
    ("Plus Size", 1),
    ("Stretchy", 0.8),
    ("Lightweight", 0.8),
    ("Sumer", 0.2),
    ("Casaul", 0.2),
)
MATERIALS: Phrases = (
    ("Cotton", 4),
    ("Chiffon", 3),
    ("Satin", 2),
    ("Linen", 2),
    ("Jersey", 2),
    ("Lace", 2),
    ("Velvet", 1.5),
    ("Polyester", 1),
    ("Rayon", 1.5),
    ("Knit", 2),
    ("Crepe", 1),
    ("Silk", 1),
    ("Denim", 0.8),
    ("Tulle", 1),
    ("Cotton Blend", 1),
    ("Chifon", 0.2),
)
NOUNS: dict[str, Phrases] = {
    "DRESS": (("Dress", 20), ("dress", 1), ("DRESS", 1), ("Dresses", 2), ("Sundress", 1.5)),
    "SKIRT": (("Skirt", 10), ("skirt", 1), ("Midi Skirt", 1), ("SKIRT", 0.5)),
    "SHIRT": (("Shirt", 6), ("Blouse", 4), ("Top", 4), ("Tee", 1), ("Tunic Top", 1), ("Button Down Shirt", 1)),
}
SIZES: Phrases = (
    ("Size M", 3),
    ("Size S", 2),
    ("Size L", 2),
    ("XL", 3),
    ("2XL", 2),
    ("XXL", 1),
    ("US 8", 2),
    ("US 12", 1),
    ("UK 10", 1),
    ("S-XXL", 1.5),
    ("(Size 12)", 1),
    ("Small", 1.5),
    ("Medium", 1.5),
    ("Large", 1),
    ("Plus 3X", 0.6),
    ("Petite", 0.8),
    ("One Size", 1),
    ("Sz 6", 0.5),
    ("M/L", 0.6),
    ("10\u201312", 0.4),
)
TAILS: Phrases = (
    ("for Women", 4),
    ("with Pockets", 3),
    ("for Wedding Guest", 1),
    ("for Summer", 1.5),
    ("Casual Loose", 1),
    ("New Arrival", 0.8),
    ("2023 Collection", 0.6),
    ("Free Shipping", 0.3),
    ("\u2013 Summer Collection", 0.6),
    ("with Belt", 1),
    ("for Party &amp; Beach", 0.6),
    ("for Party & Beach", 0.6),
    ("Made in USA", 0.5),
)
# A token placed between the product noun and the tail (sizes, tail phrases).
SEPARATORS: Phrases = (("-", 4), ("\u2013", 2), ("\u2014", 1.5), ("|", 2), (",", 3), ("/", 0.5))
# Size-only titles (a bad-row kind): tokens and numbers.
SIZE_ONLY_TOKENS: tuple[str, ...] = (
    "XS",
    "S",
    "M",
    "L",
    "XL",
    "2XL",
    "3XL",
    "XXL",
    "4",
    "6",
    "8",
    "10",
    "12",
    "14",
    "16",
    "18",
    "US 8",
    "0",
    "2",
    "S/M",
    "L/XL",
)


def class_phrases(class_name: str) -> Phrases:
    """Title variants for a class the renderer has no words for, derived from its name.

    ``knee_length`` gives ``Knee Length``, ``Knee-Length``, ``knee length`` and ``Kneelength``.

    Args:
        class_name: A lower_snake_case class name from a taxonomy.

    Returns:
        Weighted title variants, the spaced title-case form first.
    """
    words = [w for w in class_name.split("_") if w]
    spaced = " ".join(w.capitalize() for w in words)
    variants: list[tuple[str, float]] = [(spaced, 6.0), (spaced.lower(), 1.5)]
    if len(words) > 1:
        variants.append(("-".join(w.capitalize() for w in words), 2.0))
        variants.append(("".join(words).capitalize(), 0.5))
    return tuple(variants)


def attribute_phrases(attribute: str, class_name: str) -> Phrases:
    """Title variants of one class: the curated list when the renderer knows it, else derived.

    Args:
        attribute: The attribute name.
        class_name: The class name.

    Returns:
        Weighted title variants.
    """
    known = ATTRIBUTE_PHRASES.get(attribute, {}).get(class_name)
    return known if known is not None else class_phrases(class_name)
