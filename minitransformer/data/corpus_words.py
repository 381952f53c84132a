"""Word lists of the built-in corpus grammar (see ``minitransformer.data.corpus``).

Every word belongs to exactly one list (``corpus.Grammar`` checks it), so a word
alone says which slot, and for topic words which topic, produced it. That is
half of what makes the grammar unambiguous. Verbs are ``"base:past"`` pairs: a
statement uses the past tense ("Anna chopped an onion."), a question the base
form ("Did Anna chop the onion?").

Nouns never start with a vowel letter that sounds like a consonant ("unicorn",
"hour"), so the article rule "an before a, e, i, o, u" is always right.
"""

from __future__ import annotations

# Person names. A pronoun ("she"/"he") may refer back to the last person named,
# so each name has a grammatical gender. Names that are also English words
# ("Rose", "Lily", "Grace") are left out: "Rose" at a sentence start would be
# ambiguous with the flower.
NAMES_FEMALE = """Anna Clara Emma Julia Sara Nora Maria Laura Alice Hannah Sofia Mia Eva Lena Greta Ruth Helen
Irene Olga Paula Tessa Vera Zoe Ada Nina Lucy Kate Amy Ella Marta""".split()
NAMES_MALE = """Ben Tom Leo Max Sam Paul Hugo Oscar Felix Henry Jack Luke Adam Noah Omar Ivan Karl Otto Peter
Victor Simon David Martin Hans Igor Liam Ethan Ryan Theo Milo""".split()

# Shared by every topic.
TRANSITIVE = """find:found carry:carried lose:lost clean:cleaned move:moved open:opened close:closed hold:held
drop:dropped take:took keep:kept break:broke""".split()
INTRANSITIVE = """wait:waited laugh:laughed smile:smiled sleep:slept arrive:arrived rest:rested sit:sat
stay:stayed cry:cried shout:shouted nod:nodded dance:danced""".split()
DITRANSITIVE = "give:gave show:showed send:sent bring:brought hand:handed offer:offered lend:lent sell:sold".split()
SOCIAL = "meet:met visit:visited thank:thanked call:called ask:asked help:helped".split()
SAYING = "said thought knew hoped believed noticed remembered explained".split()
ADJECTIVES = """big small old new heavy tiny huge dirty red blue green yellow white black brown round strange
beautiful ugly lovely""".split()
FEELINGS = "happy sad tired angry hungry nervous proud surprised worried excited calm bored".split()
ADVERBS = "quickly slowly carefully quietly happily sadly gently loudly proudly nervously eagerly calmly".split()
OPENERS = ["later", "then", "soon", "suddenly", "meanwhile", "afterwards", "finally", "in the morning",
           "in the evening", "at noon", "at night", "the next day"]
PREPOSITIONS = ["in", "near", "behind", "outside"]

# Topic -> places, nouns (the objects a document talks about), verbs, adjectives, roles.
TOPICS = {
    "kitchen": dict(
        places="kitchen pantry bakery cafe diner canteen larder scullery bistro restaurant",
        nouns="""onion carrot potato tomato pepper lemon apple bread cake pie soup kettle pan pot spoon fork
            knife plate bowl cup jug ladle whisk oven stove napkin teapot sandwich pancake omelette sausage
            cheese butter honey jam salad noodle dumpling biscuit muffin""",
        verbs="""chop:chopped stir:stirred bake:baked taste:tasted boil:boiled fry:fried peel:peeled
            slice:sliced roast:roasted season:seasoned mix:mixed grate:grated""",
        adjectives="salty sweet spicy crispy fresh sour bitter tender juicy greasy",
        roles="cook baker waiter chef butcher dishwasher"),
    "garden": dict(
        places="garden greenhouse orchard meadow lawn patio allotment courtyard terrace hedgerow",
        nouns="""rose tulip daisy lily sunflower fern ivy cactus shrub bush seed bulb rake spade hoe trowel
            hose sprinkler wheelbarrow birdbath fountain bench trellis pebble snail worm beetle butterfly
            ladybird bee caterpillar orchid violet poppy daffodil compost vine weed seedling scarecrow""",
        verbs="""plant:planted water:watered prune:pruned dig:dug trim:trimmed sow:sowed pick:picked grow:grew
            mow:mowed spray:sprayed transplant:transplanted fertilize:fertilized""",
        adjectives="blooming thorny leafy muddy wilted fragrant overgrown dewy shady lush",
        roles="gardener florist beekeeper landscaper botanist groundskeeper"),
    "harbor": dict(
        places="harbor dock pier beach lighthouse marina quay shipyard boathouse jetty",
        nouns="""boat ship yacht canoe ferry anchor rope net sail oar buoy crab lobster shrimp oyster mussel
            seashell seagull starfish jellyfish compass telescope paddle lifejacket harpoon mast rudder barrel
            kayak raft dinghy seaweed driftwood sandcastle pelican dolphin whale tuna trawler flag""",
        verbs="""row:rowed steer:steered moor:moored tow:towed haul:hauled unload:unloaded launch:launched
            scrub:scrubbed tie:tied catch:caught drag:dragged load:loaded""",
        adjectives="sandy windy foggy stormy wet slippery sunken choppy nautical misty",
        roles="sailor fisherman captain diver lifeguard harbormaster"),
    "school": dict(
        places="""classroom hallway gymnasium playground auditorium cafeteria laboratory staffroom schoolyard
            corridor""",
        nouns="""pencil eraser ruler notebook textbook chalk blackboard desk backpack crayon marker globe
            calculator stapler folder worksheet assignment exam quiz diploma locker protractor sharpener
            microscope skeleton poster trophy report essay sticker lunchbox satchel beaker magnet projector
            certificate badge flashcard abacus whiteboard""",
        verbs="""grade:graded erase:erased study:studied solve:solved memorize:memorized copy:copied
            highlight:highlighted spell:spelled underline:underlined sharpen:sharpened fold:folded
            collect:collected""",
        adjectives="difficult tricky neat messy blank correct complicated smudged crumpled laminated",
        roles="teacher pupil principal tutor janitor headmaster"),
    "market": dict(
        places="market square bazaar mall boutique supermarket fairground arcade grocery plaza",
        nouns="""basket coin purse wallet receipt banana melon grape cherry peach pear plum mango pineapple
            coconut umbrella scarf hat glove shoe sock dress jacket necklace bracelet ring watch vase carpet
            rug lamp mirror candle toy doll balloon bicycle sack bargain souvenir""",
        verbs="""buy:bought weigh:weighed wrap:wrapped price:priced trade:traded exchange:exchanged
            return:returned order:ordered pack:packed choose:chose display:displayed compare:compared""",
        adjectives="cheap expensive discounted fake genuine elegant fancy secondhand imported handmade",
        roles="vendor merchant shopkeeper cashier customer tailor"),
    "forest": dict(
        places="forest woods clearing thicket grove swamp riverbank campsite cave marsh",
        nouns="""pinecone oak pine birch log branch twig leaf stump owl fox deer squirrel rabbit hedgehog
            badger wolf bear mushroom berry acorn nest feather footprint tent campfire lantern flashlight
            hatchet woodpecker toadstool beaver moose raccoon chipmunk antler burrow stream sapling firefly""",
        verbs="""chase:chased track:tracked gather:gathered hunt:hunted spot:spotted follow:followed
            burn:burned bury:buried hide:hid carve:carved explore:explored scare:scared""",
        adjectives="wild mossy damp hollow gloomy tangled fallen dense rotten enchanted",
        roles="ranger hunter woodcutter camper scout forester"),
    "music": dict(
        places="""studio theater bandstand conservatory ballroom nightclub chapel amphitheater opera
            discotheque""",
        nouns="""piano guitar violin cello flute trumpet drum harp banjo clarinet saxophone trombone tuba
            accordion harmonica tambourine xylophone microphone amplifier speaker song melody tune chord
            lullaby symphony concert album metronome baton ballad anthem jingle encore cassette recorder
            mandolin bagpipe oboe bassoon""",
        verbs="""play:played hum:hummed compose:composed rehearse:rehearsed whistle:whistled record:recorded
            strum:strummed perform:performed conduct:conducted practice:practiced sing:sang
            arrange:arranged""",
        adjectives="loud melodic catchy rhythmic harmonious classical acoustic electric haunting upbeat",
        roles="singer drummer pianist violinist conductor composer"),
    "workshop": dict(
        places="workshop garage basement factory warehouse forge sawmill attic lumberyard toolshed",
        nouns="""hammer saw drill wrench screwdriver nail screw bolt plank ladder toolbox chisel sandpaper
            clamp workbench lever pulley gear hinge bracket pipe valve wire cable battery motor engine tire
            wheel bucket brush roller stool cabinet shelf crowbar mallet anvil sawhorse blueprint""",
        verbs="""fix:fixed build:built weld:welded glue:glued measure:measured tighten:tightened
            loosen:loosened bend:bent assemble:assembled polish:polished oil:oiled install:installed""",
        adjectives="rusty sturdy wobbly dented sharp blunt oily splintered cracked shiny",
        roles="mechanic carpenter plumber electrician welder blacksmith"),
    "farm": dict(
        places="farm barn stable field pasture henhouse pigsty dairy vineyard farmyard",
        nouns="""cow horse pig sheep goat chicken hen rooster duck goose donkey calf lamb piglet tractor
            plough haystack saddle bridle egg pail fence gate trough scythe pitchfork wagon cart pumpkin
            turnip cabbage sickle bale cowbell horseshoe windmill silo feeder harvester shovel""",
        verbs="""milk:milked feed:fed shear:sheared herd:herded harvest:harvested ride:rode groom:groomed
            tend:tended breed:bred fetch:fetched hitch:hitched lasso:lassoed""",
        adjectives="woolly stubborn plump ripe rustic smelly organic fertile speckled hairy",
        roles="farmer shepherd farmhand rancher cowboy ploughman"),
    "hospital": dict(
        places="hospital clinic ward pharmacy infirmary hospice dispensary sickbay",
        nouns="""bandage syringe stethoscope thermometer pill tablet capsule plaster crutch wheelchair
            stretcher ambulance mask scalpel splint cast sling prescription injection vaccine ointment
            inhaler pillow blanket chart clipboard monitor drip needle vitamin bedpan gurney swab bruise
            fever cough rash headache sprain blister""",
        verbs="""examine:examined treat:treated heal:healed cure:cured inject:injected diagnose:diagnosed
            prescribe:prescribed disinfect:disinfected stitch:stitched swallow:swallowed rinse:rinsed
            soothe:soothed""",
        adjectives="sterile swollen painful itchy sore medical urgent contagious dizzy healthy",
        roles="doctor nurse surgeon patient pharmacist paramedic"),
    "station": dict(
        places="station platform terminal depot airport tunnel subway checkpoint junction crossing",
        nouns="""train tram bus taxi carriage ticket suitcase rucksack passport timetable map postcard
            guidebook seat locomotive rail signal signpost clock announcement delay journey itinerary visa
            label trolley escalator elevator compartment stamp envelope parcel briefcase magazine newspaper
            kiosk turnstile barrier coupon cab""",
        verbs="""board:boarded miss:missed reserve:reserved check:checked cancel:cancelled
            validate:validated unpack:unpacked announce:announced schedule:scheduled drive:drove
            park:parked postpone:postponed""",
        adjectives="late punctual delayed crowded express overnight international local scenic bumpy",
        roles="driver porter passenger tourist stationmaster inspector"),
    "mountain": dict(
        places="mountain summit slope glacier ridge canyon cliff plateau chalet lodge",
        nouns="""boulder helmet icicle snowball snowman sled crampon pickaxe carabiner harness thermos flask
            igloo avalanche eagle marmot yak waterfall crevasse snowflake snowboard toboggan cairn mitten
            parka boot beanie tripod camera flagpole altimeter snowshoe ledge chairlift gondola alphorn
            edelweiss chamois snowdrift skate""",
        verbs="""climb:climbed descend:descended reach:reached cross:crossed conquer:conquered scale:scaled
            photograph:photographed melt:melted rescue:rescued freeze:froze roll:rolled survey:surveyed""",
        adjectives="snowy icy steep rocky frozen chilly jagged remote breathtaking alpine",
        roles="climber skier hiker mountaineer snowboarder innkeeper"),
}
