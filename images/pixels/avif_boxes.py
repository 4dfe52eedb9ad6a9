"""What an AVIF's AV1 data will make its decoder allocate, read from the file's boxes without decoding.

The size Pillow reports for an AVIF is the one the container declares (the `ispe` property of its
primary item, or its track's header), but libavif hands the AV1 data to dav1d, which allocates frames
at the size the AV1 *sequence header* inside that data declares (up to libavif's own 16384x16384), and
Pillow is handed back the declared size. A 1 KB file declaring 16x16 and holding an 8000x8000 frame
cost about 140 MB and was accepted. So this walk finds every AV1 stream the decoder may be given (every `av01`
item, the primary, its alpha and a grid's tiles among them, and every sample of every `av01` track) and
reads each sequence header in it (the `av1C` box's configOBUs and the data itself) and each frame
header as far as its size-override flag, and reports the frame each stream can reach: the sequence
header's maximum where no frame overrides it (always, with `reduced_still_picture_header`), else
`2**frame_width_bits x 2**frame_height_bits`, all the override fields can hold (dav1d does not hold an
override to the maximum): a little more than the truth where unsure, never less.

An item whose sequence header declares a larger frame than its `ispe` is refused (InvalidImage): the
container and the codec disagree, and the decoder would follow the codec. Wherever the walk cannot be
sure (a box or an OBU running past its end, item data in another file or built from other items, an
AV1 stream with no sequence header, a sequence header it cannot read, more data or OBUs read than a
real file has), the file is refused too: never a size reported for a file the decoder reads
differently. tests/test_avif_precheck.py checks it on hostile files, real ones and fuzzed ones.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from images.pixels.errors import ImageTooLarge, InvalidImage
from images.pixels.limits import Canvas

_OBU_SEQUENCE_HEADER = 1
_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"iprp", b"ipco", b"dinf"}
_FULL_CONTAINERS = {b"meta"}  # a version and flags, then boxes


def _corrupt(what: str) -> InvalidImage:
    return InvalidImage(f"The AVIF's structure is unreadable: {what}.")


@dataclass(frozen=True)
class _Box:
    kind: bytes
    start: int  # of the body, after the header
    end: int


def _boxes(data: bytes, start: int, end: int) -> Iterator[_Box]:
    """The boxes between `start` and `end`, each checked to fit there."""
    offset = start
    while offset < end:
        if end - offset < 8:
            raise _corrupt("a box header is cut")
        size, kind = struct.unpack_from(">I4s", data, offset)
        header = 8
        if size == 1:
            if end - offset < 16:
                raise _corrupt("a box header is cut")
            (size,) = struct.unpack_from(">Q", data, offset + 8)
            header = 16
        elif size == 0:
            size = end - offset  # to the end of the enclosing box (of the file, at the top)
        if size < header or offset + size > end:
            raise _corrupt(f"the {kind!r} box runs past its end")
        yield _Box(kind, offset + header, offset + size)
        offset += size


def _once(boxes: Iterator[_Box], kinds: set[bytes]) -> Iterator[_Box]:
    """`boxes`, refusing a second box of any of `kinds`: which one a reader would use is a guess."""
    seen: set[bytes] = set()
    for box in boxes:
        if box.kind in kinds:
            if box.kind in seen:
                raise _corrupt(f"two {box.kind!r} boxes where one is allowed")
            seen.add(box.kind)
        yield box


def _walk(data: bytes, start: int, end: int) -> Iterator[_Box]:
    """Every box, depth first, into the containers this walk needs (sample entries included)."""
    for box in _boxes(data, start, end):
        yield box
        if box.kind in _CONTAINERS:
            yield from _walk(data, box.start, box.end)
        elif box.kind in _FULL_CONTAINERS:
            yield from _walk(data, box.start + 4, box.end)


class _Reader:
    """Big-endian fields read in order from one box's body, never past its end."""

    def __init__(self, data: bytes, start: int, end: int) -> None:
        self.data, self.offset, self.end = data, start, end

    def uint(self, size: int) -> int:
        if self.offset + size > self.end:
            raise _corrupt("a box is shorter than its fields")
        value = int.from_bytes(self.data[self.offset : self.offset + size], "big")
        self.offset += size
        return value

    def fourcc(self) -> bytes:
        start = self.offset
        self.uint(4)
        return self.data[start : start + 4]


@dataclass(frozen=True)
class _SequenceHeader:
    """What an AV1 sequence header says of frame sizes, and what reading a frame header needs."""

    payload: bytes
    reduced: bool
    max_width: int
    max_height: int
    width_bits: int
    height_bits: int
    presentation_time_bits: int  # 0 when frame headers carry no presentation time
    frame_id_bits: int  # 0 when frame headers carry no frame id
    force_screen_content_tools: int  # 2: each frame header says
    force_integer_mv: int


@dataclass(frozen=True)
class _Frames:
    """The frame an AV1 stream's decoder may allocate, and the largest its sequence headers declare."""

    max_width: int
    max_height: int
    reach_width: int
    reach_height: int


class _Budget:
    """How many bytes of AV1 data the walk may still read. Items and samples may point at the same
    bytes (an animation's first frame is its still image too), but a file whose thousands of items each
    point at all of it would make the walk read it thousands of times: past twice the file, refused."""

    def __init__(self, size: int) -> None:
        self.left = 2 * size + 65_536
        # Real files hold a few OBUs per frame (a sequence header, metadata, a frame); walking one costs
        # about a microsecond, so 50 MB of empty OBUs would cost half a minute: past this many, refused.
        self.obus_left = 100_000

    def take(self, size: int) -> None:
        self.left -= size
        if self.left < 0:
            raise _corrupt("its items and samples read the same data over and over")

    def take_obu(self) -> None:
        self.obus_left -= 1
        if self.obus_left < 0:
            raise _corrupt("its AV1 data is split into more OBUs than a real image has")


def avif_canvases(src: BinaryIO, *, max_samples: int) -> list[Canvas]:
    """The frame every AV1 stream of an AVIF may make its decoder allocate (an item's, or a track's
    with its sample count as frames), for the caller to check against its limits.

    Raises InvalidImage where the file's structure is unreadable or disagrees with itself, and
    ImageTooLarge for a track of more than `max_samples` samples (the walk reads every one).
    """
    data = src.read()
    src.seek(0)
    canvases: list[Canvas] = []
    streams = 0
    budget = _Budget(len(data))
    for box in _once(_boxes(data, 0, len(data)), {b"meta", b"moov"}):
        if box.kind == b"meta":
            for canvas in _item_canvases(data, box, budget):
                canvases.append(canvas)
                streams += 1
        elif box.kind == b"moov":
            for canvas in _track_canvases(data, box, budget, max_samples=max_samples):
                canvases.append(canvas)
                streams += 1
    if not streams:
        raise _corrupt("it holds no AV1 image")
    return canvases


def _item_canvases(data: bytes, meta: _Box, budget: _Budget) -> Iterator[Canvas]:
    types: dict[int, bytes] = {}
    locations: dict[int, list[tuple[int, int, int]]] = {}
    properties: list[_Box] = []
    associations: dict[int, list[int]] = {}
    idat: _Box | None = None
    once = {b"iinf", b"iloc", b"ipco", b"ipma", b"idat", b"pitm"}
    for box in _once(_walk(data, meta.start + 4, meta.end), once):
        if box.kind == b"iinf":
            types.update(_item_types(data, box))
        elif box.kind == b"iloc":
            locations = _item_locations(data, box)
        elif box.kind == b"ipco":
            properties = list(_boxes(data, box.start, box.end))
        elif box.kind == b"ipma":
            associations = _associations(data, box)
        elif box.kind == b"idat":
            idat = box
    for item, kind in types.items():
        indices = associations.get(item, [])
        if any(index > len(properties) for index in indices):
            raise _corrupt(f"item {item} has a property that is not there")
        props = [properties[index - 1] for index in indices if index]
        ispe = [prop for prop in props if prop.kind == b"ispe"]
        if kind == b"grid":
            # The grid's own canvas, which libavif allocates and fills with its tiles.
            if ispe:
                width, height = _ispe(data, ispe[0])
                yield Canvas(width, height, frames=1)
            continue
        if kind != b"av01":
            continue  # metadata (Exif, XMP) and anything libavif does not decode
        if not ispe:
            raise _corrupt(f"AV1 item {item} declares no size (ispe)")
        width, height = _ispe(data, ispe[0])
        if item not in locations:
            raise _corrupt(f"AV1 item {item} has no data")
        stream = b"".join(
            bytes(_config_obus(data, prop)) for prop in props if prop.kind == b"av1C"
        ) + b"".join(_extent_bytes(data, extent, idat, budget) for extent in locations[item])
        frames = _frames([stream], budget)
        if frames.max_width > width or frames.max_height > height:
            raise InvalidImage(
                f"The AVIF's AV1 data holds a {frames.max_width}x{frames.max_height} frame, larger "
                f"than the {width}x{height} it declares."
            )
        yield Canvas(frames.reach_width, frames.reach_height, frames=1)


def _item_types(data: bytes, iinf: _Box) -> dict[int, bytes]:
    reader = _Reader(data, iinf.start, iinf.end)
    version = reader.uint(1)
    reader.uint(3)
    reader.uint(2 if version == 0 else 4)  # entry count: the boxes that follow are what counts
    types: dict[int, bytes] = {}
    for infe in _boxes(data, reader.offset, iinf.end):
        if infe.kind != b"infe":
            continue
        entry = _Reader(data, infe.start, infe.end)
        infe_version = entry.uint(1)
        entry.uint(3)
        if infe_version < 2:
            raise _corrupt("an item entry of version 0 or 1 (no item type)")
        item = entry.uint(2 if infe_version == 2 else 4)
        entry.uint(2)  # protection index
        types[item] = entry.fourcc()
    return types


def _item_locations(data: bytes, iloc: _Box) -> dict[int, list[tuple[int, int, int]]]:
    """Each item's extents, as (construction method, offset, length)."""
    reader = _Reader(data, iloc.start, iloc.end)
    version = reader.uint(1)
    reader.uint(3)
    if version > 2:
        raise _corrupt(f"an item location table of version {version}")
    sizes = reader.uint(2)
    offset_size, length_size = sizes >> 12, (sizes >> 8) & 0xF
    base_offset_size, index_size = (sizes >> 4) & 0xF, sizes & 0xF if version else 0
    count = reader.uint(2 if version < 2 else 4)
    locations: dict[int, list[tuple[int, int, int]]] = {}
    for _ in range(count):
        item = reader.uint(2 if version < 2 else 4)
        method = reader.uint(2) & 0xF if version else 0
        if reader.uint(2) != 0:
            raise _corrupt(f"item {item}'s data is in another file")
        if method not in (0, 1):
            raise _corrupt(f"item {item}'s data is built from other items")
        base = reader.uint(base_offset_size)
        extents = []
        for _ in range(reader.uint(2)):
            reader.uint(index_size)
            extents.append((method, base + reader.uint(offset_size), reader.uint(length_size)))
        locations[item] = extents
    return locations


def _extent_bytes(data: bytes, extent: tuple[int, int, int], idat: _Box | None, budget: _Budget) -> bytes:
    method, offset, length = extent
    if method == 1:
        if idat is None:
            raise _corrupt("item data in an idat box that is not there")
        start, end = idat.start + offset, idat.end
    else:
        start, end = offset, len(data)
    if length == 0:
        length = end - start  # "to the end"
    if start + length > end:
        raise _corrupt("an item's data runs past the end of the file")
    budget.take(length)
    return data[start : start + length]


def _associations(data: bytes, ipma: _Box) -> dict[int, list[int]]:
    reader = _Reader(data, ipma.start, ipma.end)
    version = reader.uint(1)
    flags = reader.uint(3)
    associations: dict[int, list[int]] = {}
    for _ in range(reader.uint(4)):
        item = reader.uint(2 if version < 1 else 4)
        indices = associations.setdefault(item, [])
        for _ in range(reader.uint(1)):
            if flags & 1:
                indices.append(reader.uint(2) & 0x7FFF)
            else:
                indices.append(reader.uint(1) & 0x7F)
    return associations


def _ispe(data: bytes, ispe: _Box) -> tuple[int, int]:
    reader = _Reader(data, ispe.start, ispe.end)
    reader.uint(4)  # version, flags
    return reader.uint(4), reader.uint(4)


def _config_obus(data: bytes, av1c: _Box) -> memoryview:
    if av1c.end - av1c.start < 4:
        raise _corrupt("an av1C box is cut")
    return memoryview(data)[av1c.start + 4 : av1c.end]


def _track_canvases(data: bytes, moov: _Box, budget: _Budget, *, max_samples: int) -> Iterator[Canvas]:
    for trak in _boxes(data, moov.start, moov.end):
        if trak.kind != b"trak":
            continue
        config = b""
        is_av1 = False
        sizes: list[int] = []
        chunk_offsets: list[int] = []
        runs: list[tuple[int, int]] = []
        once = {b"stsd", b"stsz", b"stco", b"co64", b"stsc"}
        for box in _once(_walk(data, trak.start, trak.end), once):
            if box.kind == b"stsd":
                for entry in _boxes(data, box.start + 8, box.end):
                    if entry.kind == b"av01":
                        is_av1 = True
                        # A visual sample entry's 78 bytes of fields, then its boxes.
                        for prop in _boxes(data, entry.start + 78, entry.end):
                            if prop.kind == b"av1C":
                                config += bytes(_config_obus(data, prop))
            elif box.kind == b"stsz":
                sizes = _sample_sizes(data, box, max_samples=max_samples)
            elif box.kind in (b"stco", b"co64"):
                chunk_offsets = _chunk_offsets(data, box, wide=box.kind == b"co64")
            elif box.kind == b"stsc":
                runs = _sample_runs(data, box)
        if not is_av1:
            continue
        samples = [config]
        for offset, size in _samples(sizes, chunk_offsets, runs):
            if offset + size > len(data):
                raise _corrupt("a sample runs past the end of the file")
            budget.take(size)
            samples.append(data[offset : offset + size])
        frames = _frames(samples, budget)
        yield Canvas(frames.reach_width, frames.reach_height, frames=max(len(sizes), 1))


def _sample_sizes(data: bytes, stsz: _Box, *, max_samples: int) -> list[int]:
    reader = _Reader(data, stsz.start, stsz.end)
    reader.uint(4)
    size, count = reader.uint(4), reader.uint(4)
    if count > max_samples:
        raise ImageTooLarge(f"The animation has {count} frames, over the limit of {max_samples}.")
    return [size] * count if size else [reader.uint(4) for _ in range(count)]


def _chunk_offsets(data: bytes, box: _Box, *, wide: bool) -> list[int]:
    reader = _Reader(data, box.start, box.end)
    reader.uint(4)
    count = reader.uint(4)
    if count * (8 if wide else 4) > box.end - reader.offset:
        raise _corrupt("a chunk offset table is cut")
    return [reader.uint(8 if wide else 4) for _ in range(count)]


def _sample_runs(data: bytes, stsc: _Box) -> list[tuple[int, int]]:
    """(first chunk, samples per chunk) of each run of chunks."""
    reader = _Reader(data, stsc.start, stsc.end)
    reader.uint(4)
    count = reader.uint(4)
    if count * 12 > stsc.end - reader.offset:
        raise _corrupt("a sample-to-chunk table is cut")
    runs = []
    for _ in range(count):
        first, per_chunk = reader.uint(4), reader.uint(4)
        reader.uint(4)  # sample description index
        runs.append((first, per_chunk))
    return runs


def _samples(
    sizes: list[int], chunk_offsets: list[int], runs: list[tuple[int, int]]
) -> Iterator[tuple[int, int]]:
    """Each sample's (offset, size), laid out in chunks as the tables say; every sample placed."""
    sample = 0
    for index, (first, per_chunk) in enumerate(runs):
        last = runs[index + 1][0] - 1 if index + 1 < len(runs) else len(chunk_offsets)
        if first < 1 or last > len(chunk_offsets) or last < first - 1:
            raise _corrupt("the sample-to-chunk table names chunks that are not there")
        for chunk in range(first - 1, last):
            offset = chunk_offsets[chunk]
            for _ in range(per_chunk):
                if sample == len(sizes):
                    return
                yield offset, sizes[sample]
                offset += sizes[sample]
                sample += 1
    if sample < len(sizes):
        raise _corrupt("samples are not in any chunk")


def _leb128(data: bytes | memoryview, offset: int) -> tuple[int, int]:
    value = 0
    for index in range(8):
        if offset + index >= len(data):
            raise _corrupt("an AV1 OBU size is cut")
        byte = data[offset + index]
        value |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            return value, offset + index + 1
    raise _corrupt("an AV1 OBU size is too long")


_OBU_FRAME_HEADER, _OBU_FRAME, _OBU_REDUNDANT_FRAME_HEADER = 3, 6, 7
# A frame header's fields up to its size override flag take at most 70 bits (a 32-bit presentation
# time and a 25-bit frame id at most).
_FRAME_HEADER_PREFIX = 16


def _frames(units: list[bytes], budget: _Budget) -> _Frames:
    """The frames the AV1 data in `units` (an item's, or a track's samples, in decoding order) may
    make the decoder allocate.

    A frame is the sequence header's maximum size unless its frame header overrides it (and dav1d
    then takes any size the field can hold). So every frame header is read up to its override flag,
    under the sequence header before it; where that cannot be sure (a flag set, a header that does not
    read, sequence headers that differ, so that seeking could pair a frame with another one), the
    stream is taken to reach as far as its fields can.
    """
    headers: list[_SequenceHeader] = []
    overridden = False
    for unit in units:
        for kind, payload in _obus(unit, budget):
            if kind == _OBU_SEQUENCE_HEADER:
                headers.append(_parse_sequence_header(payload))
            else:
                if not headers:
                    raise _corrupt("an AV1 frame comes before any sequence header")
                overridden = overridden or _may_override_size(payload, headers[-1])
    if not headers:
        raise _corrupt("AV1 data has no sequence header")
    exact = not overridden and len({header.payload for header in headers}) == 1
    reach = [
        (header.max_width, header.max_height)
        if exact or header.reduced
        else (1 << header.width_bits, 1 << header.height_bits)
        for header in headers
    ]
    return _Frames(
        max_width=max(header.max_width for header in headers),
        max_height=max(header.max_height for header in headers),
        reach_width=max(width for width, _ in reach),
        reach_height=max(height for _, height in reach),
    )


def _obus(stream: bytes, budget: _Budget) -> Iterator[tuple[int, bytes]]:
    """The (type, payload) of each OBU in `stream` (the low-overhead format ISOBMFF holds AV1 in);
    of a frame's, only the start, where its header is."""
    offset = 0
    while offset < len(stream):
        budget.take_obu()
        header = stream[offset]
        kind = (header >> 3) & 0xF
        payload = offset + 1 + (1 if header & 0x4 else 0)  # the extension byte
        if payload > len(stream):
            raise _corrupt("an AV1 OBU header is cut")
        if header & 0x2:
            size, payload = _leb128(stream, payload)
        else:
            size = len(stream) - payload  # no size field: the OBU runs to the end, as dav1d reads it
        if payload + size > len(stream):
            raise _corrupt("an AV1 OBU runs past its data")
        if kind == _OBU_SEQUENCE_HEADER:
            yield kind, stream[payload : payload + size]
        elif kind in (_OBU_FRAME_HEADER, _OBU_FRAME, _OBU_REDUNDANT_FRAME_HEADER):
            yield kind, stream[payload : payload + min(size, _FRAME_HEADER_PREFIX)]
        offset = payload + size


class _Bits:
    def __init__(self, data: bytes) -> None:
        self.data, self.position = data, 0

    def read(self, count: int) -> int:
        value = 0
        for _ in range(count):
            byte = self.position >> 3
            if byte >= len(self.data):
                raise _corrupt("an AV1 sequence header is cut")
            value = (value << 1) | ((self.data[byte] >> (7 - (self.position & 7))) & 1)
            self.position += 1
        return value

    def uvlc(self) -> int:
        zeros = 0
        while not self.read(1):
            zeros += 1
            if zeros >= 32:
                raise _corrupt("an AV1 sequence header has an unreadable number")
        return self.read(zeros) + (1 << zeros) - 1


def _parse_sequence_header(payload: bytes) -> _SequenceHeader:
    """The fields of an AV1 sequence header (AV1 spec 5.5) up to what frame headers need, read in
    dav1d's order."""
    bits = _Bits(payload)
    profile = bits.read(3)
    if profile > 2:
        raise _corrupt(f"an AV1 sequence header of profile {profile}")
    still_picture = bits.read(1)
    reduced = bool(bits.read(1))
    if reduced and not still_picture:
        raise _corrupt("an AV1 sequence header is reduced but not still")
    presentation_time_bits = 0
    if reduced:
        bits.read(5)  # level of the one operating point
    else:
        decoder_model_info = False
        delay_bits = 0
        if bits.read(1):  # timing info
            bits.read(64)
            equal_picture_interval = bits.read(1)
            if equal_picture_interval:
                bits.uvlc()
            decoder_model_info = bool(bits.read(1))
            if decoder_model_info:
                delay_bits = bits.read(5) + 1
                bits.read(32 + 5)
                if not equal_picture_interval:
                    presentation_time_bits = bits.read(5) + 1
                else:
                    bits.read(5)
        display_model_info = bits.read(1)
        for _ in range(bits.read(5) + 1):  # operating points
            bits.read(12)  # which layers
            if bits.read(5) > 7:  # level index: a tier bit from level 4.0 up
                bits.read(1)
            if decoder_model_info and bits.read(1):
                bits.read(2 * delay_bits + 1)
            if display_model_info and bits.read(1):
                bits.read(4)
    width_bits = bits.read(4) + 1
    height_bits = bits.read(4) + 1
    max_width = bits.read(width_bits) + 1
    max_height = bits.read(height_bits) + 1
    frame_id_bits = 0
    if not reduced and bits.read(1):  # frame id numbers
        delta_bits = bits.read(4) + 2
        frame_id_bits = bits.read(3) + delta_bits + 1
    bits.read(3)  # 128x128 superblocks, filter intra, intra edge filter
    force_screen_content_tools = force_integer_mv = 2
    if not reduced:
        bits.read(4)  # inter-intra, masked compound, warped motion, dual filter
        if bits.read(1):  # order hint
            bits.read(2)
        if not bits.read(1):  # screen content tools chosen per frame
            force_screen_content_tools = bits.read(1)
        if force_screen_content_tools:
            if not bits.read(1):  # integer motion vectors chosen per frame
                force_integer_mv = bits.read(1)
        else:
            force_integer_mv = 2
    return _SequenceHeader(
        payload=payload,
        reduced=reduced,
        max_width=max_width,
        max_height=max_height,
        width_bits=width_bits,
        height_bits=height_bits,
        presentation_time_bits=presentation_time_bits,
        frame_id_bits=frame_id_bits,
        force_screen_content_tools=force_screen_content_tools,
        force_integer_mv=force_integer_mv,
    )


_KEY_FRAME, _SWITCH_FRAME = 0, 3


def _may_override_size(payload: bytes, sequence: _SequenceHeader) -> bool:
    """Whether a frame header (AV1 spec 5.9.2, up to `frame_size_override_flag`) may set a frame
    size other than the sequence header's maximum: its flag set, a switch frame, or unreadable."""
    if sequence.reduced:
        return False  # no override flag: every frame is the maximum
    bits = _Bits(payload)
    try:
        if bits.read(1):  # show_existing_frame: shows a frame already decoded, allocates none
            return False
        frame_type = bits.read(2)
        show_frame = bits.read(1)
        if show_frame:
            bits.read(sequence.presentation_time_bits)
        else:
            bits.read(1)  # showable_frame
        if not (frame_type == _SWITCH_FRAME or (frame_type == _KEY_FRAME and show_frame)):
            bits.read(1)  # error_resilient_mode
        bits.read(1)  # disable_cdf_update
        screen_content_tools = sequence.force_screen_content_tools
        if screen_content_tools == 2:
            screen_content_tools = bits.read(1)
        if screen_content_tools and sequence.force_integer_mv == 2:
            bits.read(1)
        bits.read(sequence.frame_id_bits)
        if frame_type == _SWITCH_FRAME:
            return True
        return bool(bits.read(1))
    except InvalidImage:
        return True  # a frame header this walk cannot read: assume the worst
