"""CHAIR on the 80 COCO categories: a synonym lexicon, CHAIR's special cases, COCO ground truth.

CHAIR (Rohrbach et al., 2018, "Object Hallucination in Image Captioning"; reference code
``LisaAnne/Hallucination`` ``utils/chair.py``, reused by RLHF-V / RLAIF-V for Object HalBench)
finds the COCO objects a text mentions by matching words against a synonym list per category.
Its special cases, all reproduced here:

* two-word names are single mentions: "hot dog" is a hot dog (not a dog), "teddy bear" a teddy
  bear (not a bear), "cell phone", "fire hydrant", "traffic light", "stop sign", "wine glass"...;
* "baby"/"adult" + an animal word is that animal ("baby bird" is a bird, not a person);
  "passenger jet" / "passenger train" are an airplane / a train (not a person);
* "bow tie" is a tie; "toilet seat" is a toilet (not a chair), and when a text says "toilet"
  anywhere, a bare "seat" in it is not a chair either;
* "home plate" and "train track" name nothing (not a train).

The synonym lists are this project's own (:data:`COCO_SYNONYMS`); where they differ from the
reference ``synonyms.txt`` they lean towards fewer false alarms: ambiguous words that the reference
maps ("glass", "bow", "goat" as sheep, "briefcase" as handbag, "container" as bowl) are left out,
and a few extra two-word names keep a part from firing on its own ("toilet bowl" is a toilet,
"microwave oven" a microwave, "toaster oven" a toaster). Plurals come from
:class:`~mmrlaif.evaluation.lexicon.Lexicon` (regular rules plus :data:`IRREGULAR_PLURALS`), which
stands in for the reference's singularisation; matching is case-insensitive.

Counting follows the reference: every occurrence of an object word is one mention ("a dog and
another dog" is two mentions of dog).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping
from types import MappingProxyType

from mmrlaif.evaluation.benchmarks.common import (
    BenchmarkDataError,
    BenchmarkFormatError,
    DataRoot,
    Fields,
    load_json,
)
from mmrlaif.evaluation.lexicon import Lexicon, Mention

logger = logging.getLogger(__name__)

#: The 80 COCO 2014 object categories, in category-id order, with COCO's own names.
COCO_CATEGORIES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich",
    "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote",
    "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book",
    "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip

_ANIMAL_WORDS = {
    "bird": "bird", "cat": "cat", "dog": "dog", "horse": "horse", "sheep": "sheep", "cow": "cow",
    "elephant": "elephant", "bear": "bear", "zebra": "zebra", "giraffe": "giraffe",
}  # fmt: skip

_BASE_SYNONYMS: dict[str, tuple[str, ...]] = {
    "person": (
        "people", "man", "woman", "boy", "girl", "child", "children", "kid", "baby", "toddler",
        "adult", "teenager", "lady", "gentleman", "guy", "male", "female", "player", "skier",
        "snowboarder", "surfer", "skateboarder", "skater", "rider", "biker", "cyclist",
        "bicyclist", "pedestrian", "passenger", "driver", "worker", "chef", "baker", "officer",
        "policeman", "policewoman", "cop", "soldier", "student", "tourist", "spectator",
        "athlete", "pitcher", "batter", "catcher", "umpire", "bride", "groom", "mother",
        "father", "sister", "brother", "customer", "vendor",
    ),
    "bicycle": ("bike",),
    "car": (
        "automobile", "sedan", "van", "minivan", "suv", "taxi", "cab", "jeep", "hatchback",
        "coupe", "limousine", "limo",
    ),
    "motorcycle": ("motorbike", "motor bike", "motor cycle", "dirt bike", "scooter", "moped"),
    "airplane": (
        "plane", "aeroplane", "air plane", "aircraft", "airliner", "jet", "jetliner",
        "passenger jet", "biplane", "seaplane",
    ),
    "bus": ("minibus",),
    "train": ("locomotive", "passenger train"),
    "truck": ("pickup", "pickup truck", "lorry", "firetruck"),
    "boat": (
        "ship", "sailboat", "yacht", "canoe", "kayak", "ferry", "motorboat", "speedboat",
        "rowboat", "vessel",
    ),
    "traffic light": (
        "traffic signal", "stop light", "stoplight", "street light", "streetlight",
    ),
    "fire hydrant": ("hydrant",),
    "stop sign": (),
    "parking meter": (),
    "bench": ("pew",),
    "bird": (
        "pigeon", "dove", "seagull", "gull", "duck", "duckling", "goose", "swan", "parrot",
        "owl", "eagle", "hawk", "falcon", "crow", "raven", "sparrow", "finch", "robin",
        "pelican", "heron", "egret", "flamingo", "peacock", "rooster", "songbird", "seabird",
        "waterfowl",
    ),
    "cat": ("kitten", "kitty", "feline", "tabby"),
    "dog": (
        "puppy", "pup", "doggy", "doggie", "canine", "hound", "poodle", "terrier", "retriever",
        "labrador", "bulldog", "beagle", "dachshund", "chihuahua", "husky", "collie", "sheepdog",
        "pug", "corgi", "greyhound", "spaniel",
    ),
    "horse": ("pony", "foal", "colt", "stallion", "mare"),
    "sheep": ("lamb", "ram", "ewe"),
    "cow": ("cattle", "calf", "ox", "bull", "heifer"),
    "elephant": (),
    "bear": ("panda",),
    "zebra": (),
    "giraffe": (),
    "backpack": ("back pack", "knapsack", "rucksack"),
    "umbrella": ("parasol",),
    "handbag": ("hand bag", "purse"),
    "tie": ("necktie", "bow tie"),
    "suitcase": ("suit case", "luggage"),
    "frisbee": (),
    "skis": ("ski",),
    "snowboard": (),
    "sports ball": ("ball",),
    "kite": (),
    "baseball bat": (),
    "baseball glove": ("baseball mitt", "mitt"),
    "skateboard": ("skate board",),
    "surfboard": ("surf board",),
    "tennis racket": ("racket", "racquet", "tennis racquet"),
    "bottle": (),
    "wine glass": ("wineglass",),
    "cup": ("mug", "teacup"),
    "fork": (),
    "knife": (),
    "spoon": (),
    "bowl": (),
    "banana": (),
    "apple": (),
    "sandwich": ("burger", "hamburger", "cheeseburger"),
    "orange": (),
    "broccoli": (),
    "carrot": (),
    "hot dog": ("hotdog",),
    "pizza": (),
    "donut": ("doughnut",),
    "cake": ("cupcake", "cheesecake"),
    "chair": ("seat", "stool", "armchair", "high chair"),
    "couch": ("sofa", "loveseat", "futon", "settee", "recliner"),
    "potted plant": ("houseplant", "house plant"),
    "bed": (),
    "dining table": ("table", "coffee table", "desk"),
    "toilet": ("toilet seat", "toilet bowl", "urinal", "commode", "lavatory"),
    "tv": ("television", "monitor"),
    "laptop": ("laptop computer", "computer", "macbook", "netbook"),
    "mouse": (),
    "remote": ("remote control",),
    "keyboard": (),
    "cell phone": (
        "cellphone", "phone", "mobile phone", "smartphone", "telephone", "iphone",
    ),
    "microwave": ("microwave oven",),
    "oven": ("stove", "stovetop", "stove top"),
    "toaster": ("toaster oven",),
    "sink": (),
    "refrigerator": ("fridge", "freezer"),
    "book": (),
    "clock": (),
    "vase": (),
    "scissors": (),
    "teddy bear": ("teddy", "teddybear"),
    "hair drier": ("hair dryer", "hairdryer", "blow dryer", "blow drier"),
    "toothbrush": (),
}  # fmt: skip


def _synonyms() -> dict[str, tuple[str, ...]]:
    table = dict(_BASE_SYNONYMS)
    for word, category in _ANIMAL_WORDS.items():
        table[category] = (*table[category], f"baby {word}", f"adult {word}")
    return table


#: COCO category -> its synonyms (CHAIR's "baby"/"adult" + animal names included).
COCO_SYNONYMS: Mapping[str, tuple[str, ...]] = MappingProxyType(_synonyms())

#: Phrases that contain an object word but name no COCO object.
COCO_EXCLUSIONS: tuple[str, ...] = (
    "home plate",
    "train track",
    "baby animal",
    "adult animal",
    "baby cub",
    "adult cub",
)

#: Irregular plurals of words used in the synonym lists.
IRREGULAR_PLURALS: Mapping[str, str] = MappingProxyType(
    {
        "person": "people",
        "man": "men",
        "woman": "women",
        "gentleman": "gentlemen",
        "policeman": "policemen",
        "policewoman": "policewomen",
        "goose": "geese",
        "knife": "knives",
        "calf": "calves",
        "ox": "oxen",
        "mouse": "mice",
        "shelf": "shelves",
    }
)


def coco_lexicon() -> Lexicon:
    """Build the COCO lexicon: the 80 categories, their synonyms, CHAIR's exclusions."""
    return Lexicon(COCO_SYNONYMS, exclusions=COCO_EXCLUSIONS, irregular_plurals=IRREGULAR_PLURALS)


class CocoObjectExtractor:
    """Find COCO object mentions in text, with CHAIR's rules (see the module docstring).

    Args:
        lexicon: The lexicon to match with; :func:`coco_lexicon` when ``None``.
    """

    def __init__(self, lexicon: Lexicon | None = None) -> None:
        self.lexicon = lexicon or coco_lexicon()

    def mentions(self, text: str) -> list[Mention]:
        """Object mentions in text order, one per occurrence.

        A bare "seat"/"seats" is dropped when the text also says "toilet" (CHAIR: "the seat of the
        toilet" is not a chair).
        """
        found = self.lexicon.extract(text)
        says_toilet = any(m.surface.split()[0] in ("toilet", "toilets") for m in found)
        if says_toilet:
            found = [m for m in found if m.surface not in ("seat", "seats")]
        return found

    def objects(self, text: str) -> list[str]:
        """Canonical COCO category of every mention, in text order (repeats kept)."""
        return [m.canonical for m in self.mentions(text)]

    def canonical(self, name: str) -> str:
        """The COCO category of a name (category, synonym or plural); ``UnknownObjectError``."""
        return self.lexicon.canonical(name)


def _annotation_files(root: DataRoot, folder: str, kind: str) -> list[str]:
    files = [
        f
        for f in root.list_files(folder)
        if f.rsplit("/", 1)[-1].startswith(f"{kind}_") and f.endswith(".json")
    ]
    if not files:
        raise BenchmarkDataError(
            root.benchmark, root.path(f"{folder}/{kind}_*.json"), "no COCO annotation file"
        )
    return files


def load_coco_ground_truth(
    root: DataRoot,
    image_ids: Iterable[int],
    extractor: CocoObjectExtractor | None = None,
    folder: str = "annotations",
) -> dict[int, frozenset[str]]:
    """Ground-truth COCO objects per image, as CHAIR builds them.

    An image's objects are the categories of its instance annotations (every
    ``<folder>/instances_*.json``, e.g. train2014 and val2014) together with the objects that
    :class:`CocoObjectExtractor` finds in its reference captions (every
    ``<folder>/captions_*.json``).

    Args:
        root: The data root.
        image_ids: The COCO image ids needed.
        extractor: Object extractor for the captions; the default COCO one when ``None``.
        folder: Folder of the COCO annotation files under ``root``.

    Returns:
        Image id -> COCO categories, for every requested id.

    Raises:
        BenchmarkDataError: If no instances or captions file is there, or a requested image is in
            no instances file (naming the image id).
        BenchmarkFormatError: If a file is malformed (naming file, record and problem), or a
            category name is not one of the 80 COCO categories.
    """
    extractor = extractor or CocoObjectExtractor()
    wanted = set(image_ids)
    objects: dict[int, set[str]] = {i: set() for i in wanted}
    known_images: set[int] = set()
    for rel in _annotation_files(root, folder, "instances"):
        data, file = load_json(root, rel), root.path(rel)
        if not isinstance(data, dict):
            raise BenchmarkFormatError(file, None, "expected a JSON object with COCO sections")
        names = _categories(data, file, extractor)
        for label, record in _section(data, "images", file):
            known_images.add(Fields(file, label, record).integer("id"))
        for label, record in _section(data, "annotations", file):
            fields = Fields(file, label, record, id_key="id")
            image_id, category_id = fields.integer("image_id"), fields.integer("category_id")
            if category_id not in names:
                raise fields.error(f"unknown category_id {category_id}")
            if image_id in objects:
                objects[image_id].add(names[category_id])
    for rel in _annotation_files(root, folder, "captions"):
        data, file = load_json(root, rel), root.path(rel)
        if not isinstance(data, dict):
            raise BenchmarkFormatError(file, None, "expected a JSON object with COCO sections")
        for label, record in _section(data, "annotations", file):
            fields = Fields(file, label, record, id_key="id")
            image_id, caption = fields.integer("image_id"), fields.string("caption")
            if image_id in objects:
                objects[image_id].update(extractor.objects(caption))
    missing = sorted(wanted - known_images)
    if missing:
        raise BenchmarkDataError(
            root.benchmark,
            root.path(f"{folder}/instances_*.json"),
            f"COCO image id {missing[0]} ({len(missing)} missing in all) is in no instances file",
        )
    return {i: frozenset(objs) for i, objs in objects.items()}


def _section(data: dict, key: str, file: str) -> list[tuple[str, object]]:
    section = data.get(key)
    if not isinstance(section, list):
        raise BenchmarkFormatError(file, None, f"section {key!r} must be a list")
    return [(f"{key}[{i}]", record) for i, record in enumerate(section)]


def _categories(data: dict, file: str, extractor: CocoObjectExtractor) -> dict[int, str]:
    names: dict[int, str] = {}
    for label, record in _section(data, "categories", file):
        fields = Fields(file, label, record, id_key="id")
        name = fields.string("name")
        if name not in COCO_CATEGORIES:
            raise fields.error(f"category {name!r} is not one of the 80 COCO categories")
        names[fields.integer("id")] = extractor.canonical(name)
    return names


def coco_categories_of(names: Collection[str], extractor: CocoObjectExtractor) -> frozenset[str]:
    """Map object names (categories, synonyms, plurals) to COCO categories.

    Raises:
        UnknownObjectError: If a name is not in the lexicon.
    """
    return frozenset(extractor.canonical(n) for n in names)
