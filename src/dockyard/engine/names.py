"""Container ids and generated names (Docker's ``adjective_surname``, e.g. ``quirky_turing``)."""

from __future__ import annotations

import secrets

_LEFT = ("admiring", "agitated", "amazing", "angry", "awesome", "blissful", "bold", "boring",
         "brave", "busy", "charming", "clever", "compassionate", "competent", "confident",
         "cool", "dazzling", "determined", "distracted", "dreamy", "eager", "ecstatic",
         "elastic", "elated", "elegant", "eloquent", "epic", "exciting", "fervent", "festive",
         "flamboyant", "focused", "friendly", "frosty", "funny", "gallant", "gifted", "goofy",
         "gracious", "great", "happy", "hardcore", "heuristic", "hopeful", "hungry", "infallible",
         "inspiring", "intelligent", "interesting", "jolly", "jovial", "keen", "kind", "laughing",
         "loving", "lucid", "magical", "modest", "musing", "mystifying", "naughty", "nervous",
         "nice", "nifty", "nostalgic", "objective", "optimistic", "peaceful", "pedantic",
         "pensive", "practical", "priceless", "quirky", "quizzical", "recursing", "relaxed",
         "reverent", "romantic", "sad", "serene", "sharp", "silly", "sleepy", "stoic", "strange",
         "stupefied", "suspicious", "sweet", "tender", "thirsty", "trusting", "unruffled",
         "upbeat", "vibrant", "vigilant", "vigorous", "wizardly", "wonderful", "xenodochial",
         "youthful", "zealous", "zen")
_RIGHT = ("agnesi", "albattani", "allen", "archimedes", "babbage", "banach", "bardeen", "bartik",
          "bassi", "bell", "benz", "bhabha", "blackwell", "bohr", "booth", "borg", "bose",
          "brahmagupta", "brattain", "brown", "cannon", "carson", "cerf", "chandrasekhar",
          "chaplygin", "clarke", "cohen", "curie", "darwin", "davinci", "dijkstra", "dirac",
          "einstein", "elion", "engelbart", "euclid", "euler", "fermat", "fermi", "feynman",
          "franklin", "galileo", "gauss", "goldberg", "goldwasser", "goodall", "hamilton",
          "hawking", "heisenberg", "hodgkin", "hopper", "hypatia", "jackson", "jang", "jennings",
          "johnson", "kalam", "kapitsa", "keller", "kepler", "khayyam", "knuth", "kowalevski",
          "lalande", "lamarr", "lamport", "leakey", "lovelace", "lumiere", "mahavira", "mayer",
          "mccarthy", "mcclintock", "meitner", "mendel", "merkle", "minsky", "mirzakhani",
          "morse", "murdock", "napier", "newton", "nobel", "noether", "pascal", "pasteur",
          "payne", "perlman", "pike", "poincare", "ptolemy", "raman", "ramanujan", "ritchie",
          "rosalind", "sammet", "shannon", "shaw", "sinoussi", "stonebraker", "swartz", "tesla",
          "thompson", "torvalds", "turing", "varahamihira", "visvesvaraya", "wescoff", "wiles",
          "williams", "wilson", "wing", "wozniak", "wright", "yalow", "yonath")


def new_id() -> str:
    """64 lowercase hex digits; never all digits (docker avoids ids that parse as numbers)."""
    while True:
        cid = secrets.token_hex(32)
        if not cid[:12].isdigit():
            return cid


def generate_name(taken) -> str:  # noqa: ANN001 - a container: ``name in taken``
    """A free ``adjective_surname``; after a few collisions a digit is appended, as docker does."""
    for attempt in range(20):
        name = f"{secrets.choice(_LEFT)}_{secrets.choice(_RIGHT)}"
        if attempt > 5:
            name += str(secrets.randbelow(10))
        if name not in taken:
            return name
    return f"container_{secrets.token_hex(4)}"
