"""Words for seeded titles, most frequent first, so filters meet realistic selectivity.

`seed_images` draws 2-4 of `WORDS` per title with Zipf weights (the n-th word is n times rarer than the
first): the first word ends up in about 30 % of the titles, the 60th in about half a percent, the last
ones in about a tenth of a percent. One title in a hundred also gets one of `RARE_WORDS` (each about
0.01 % of the rows), and one in four is a camera file name instead (`IMG_4821`, `DSC_0193`: each number
a few rows per hundred thousand). Some words are accented or capitalized, so the case- and
Unicode-folding filter meets them.
"""


def _words(text: str) -> list[str]:
    """The words of `text`, each once, in order."""
    return list(dict.fromkeys(text.split()))


WORDS = _words(
    """
beach sunset photo family summer city night portrait light street dog garden mountain old friends
winter sky morning tree house snow lake river sea cat trip party road wedding flowers view forest
birthday park holiday walk blue red green water autumn spring evening clouds bridge train window
coffee kitchen birds christmas baby car children music dinner boat harbour rain field island hill
church market festival shadow reflection colours golden storm path school castle museum village
farm horse bike tower wall door portrait stairs lights fire smoke desert valley canyon waterfall
cliff coast sand waves ocean pier lighthouse sailboat sunrise moon stars fog mist frost ice
leaves branch roots moss rock stone pebbles shell crab fish seagull pigeon duck swan owl fox deer
rabbit squirrel butterfly bee spider flower rose tulip daisy sunflower orchid lily cactus fern palm
oak pine maple willow birch meadow orchard vineyard wheat corn harvest pumpkin apple cherry lemon
orange strawberry bread cake cheese wine beer tea breakfast lunch picnic barbecue restaurant cafe
bakery shop bookstore library gallery theatre cinema concert stadium match team runner cyclist
climber skier surfer swimmer hiker camper tent campfire cabin lodge hut bench fountain statue
monument cathedral temple mosque palace fortress ruins arch tunnel highway street alley square
plaza skyline skyscraper rooftop balcony terrace courtyard porch fence gate lantern candle lamp
neon sign poster graffiti mural sculpture painting drawing sketch pattern texture detail macro
closeup abstract minimal silhouette contrast monochrome vintage retro film grain blur bokeh
panorama aerial drone underwater timelapse longexposure nightsky milkyway aurora eclipse rainbow
thunder lightning tornado flood drought heatwave blizzard avalanche volcano glacier fjord geyser
crater dune oasis jungle rainforest savanna tundra marsh swamp delta lagoon reef atoll peninsula
Café Über Straße Zürich Köln Málaga Kraków Ångström façade naïve piñata jalapeño crème brûlée
"""
)

RARE_WORDS = _words(
    """
ouagadougou tegucigalpa antananarivo ulaanbaatar kathmandu thimphu reykjavik nuuk longyearbyen
tromsø kirkenes hammerfest vardø svalbard lofoten faroe shetland orkney hebrides connemara
dolomites carpathians pyrenees atlas drakensberg kilimanjaro ruwenzori simien danakil sossusvlei
okavango zambezi serengeti ngorongoro masai amboseli tsavo bwindi virunga nyiragongo
patagonia atacama altiplano uyuni titicaca galápagos chiloé torres fitzroy ushuaia
kamchatka yakutsk baikal altai tian pamir karakoram hunza ladakh zanskar spiti sikkim
"""
)
