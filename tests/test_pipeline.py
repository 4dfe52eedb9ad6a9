"""The pipeline through the API: animations, the `format` field, output size, frame and pixel budgets."""

from __future__ import annotations

import io

import pytest
from PIL import Image as PILImage
from PIL.PngImagePlugin import Blend, Disposal

from tests.conftest import assert_nothing_stored, stored_names
from tests.images import BLUE, GREEN, RED, WHITE, close, corners, encode, quadrants
from tests.problems import assert_problem

COLOURS = [RED, GREEN, BLUE]


def animation(fmt: str, *, frames: int = 3, size: tuple[int, int] = (200, 100), **params: object) -> bytes:
    images = [PILImage.new("RGB", size, COLOURS[i % 3]) for i in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, fmt, save_all=True, append_images=images[1:], **params)
    return buffer.getvalue()


def frames_of(im: PILImage.Image) -> list[tuple[int, tuple[int, ...], int | None]]:
    """(duration, colour at the centre, GIF disposal) of every frame."""
    out = []
    for index in range(im.n_frames):
        im.seek(index)
        im.load()
        centre = im.convert("RGB").getpixel((im.width // 2, im.height // 2))
        out.append((im.info.get("duration"), centre, getattr(im, "disposal_method", None)))
    return out


# --- Animation -------------------------------------------------------------------------------


def test_animated_gif_stays_animated_with_its_timing_loop_and_disposal(upload, served):
    raw = animation("GIF", duration=[100, 200, 300], loop=0, disposal=[1, 2, 1])
    body = upload(raw, filename="anim.gif", width=100).json()
    assert (body["format"], body["width"], body["height"]) == ("gif", 100, 50)
    stored = served(body["url"])
    assert stored.n_frames == 3
    assert stored.info["loop"] == 0
    frames = frames_of(stored)
    assert [d for d, _, _ in frames] == [100, 200, 300]
    assert [disposal for _, _, disposal in frames] == [1, 2, 1]
    assert all(close(colour, expected) for (_, colour, _), expected in zip(frames, COLOURS, strict=True))


def test_gif_that_plays_once_still_plays_once(upload, served):
    body = upload(animation("GIF", duration=50), filename="once.gif", width=50).json()
    stored = served(body["url"])
    assert stored.n_frames == 3
    assert "loop" not in stored.info


def test_animated_webp_stays_animated(upload, served):
    raw = animation("WEBP", duration=[120, 80, 40], loop=3)
    body = upload(raw, filename="anim.webp", width=100).json()
    stored = served(body["url"])
    assert (stored.format, stored.n_frames, stored.size) == ("WEBP", 3, (100, 50))
    assert stored.info["loop"] == 3
    frames = frames_of(stored)
    assert [d for d, _, _ in frames] == [120, 80, 40]
    assert all(close(colour, expected) for (_, colour, _), expected in zip(frames, COLOURS, strict=True))


def test_animated_gif_stored_as_webp_stays_animated(upload, served):
    body = upload(animation("GIF", duration=70, loop=0), filename="a.gif", format="webp").json()
    stored = served(body["url"])
    assert (stored.format, stored.n_frames) == ("WEBP", 3)


def test_animated_png_stays_animated(upload, served):
    raw = animation("PNG", duration=[120, 80, 40], loop=2)
    body = upload(raw, filename="anim.png", width=100).json()
    assert (body["format"], body["width"], body["height"]) == ("png", 100, 50)
    stored = served(body["url"])
    assert (stored.format, stored.mode, stored.n_frames, stored.info["loop"]) == ("PNG", "RGB", 3, 2)
    frames = frames_of(stored)
    assert [d for d, _, _ in frames] == [120, 80, 40]
    assert all(close(colour, expected) for (_, colour, _), expected in zip(frames, COLOURS, strict=True))


def test_animated_png_leaves_out_its_still_for_viewers_without_animation(upload, served):
    still = PILImage.new("RGB", (200, 100), WHITE)
    buffer = io.BytesIO()
    frames = [PILImage.new("RGB", (200, 100), colour) for colour in COLOURS]
    still.save(buffer, "PNG", save_all=True, append_images=frames, default_image=True, duration=100)
    stored = served(upload(buffer.getvalue(), filename="anim.png").json()["url"])
    assert stored.n_frames == 3
    assert all(
        close(colour, expected) for (_, colour, _), expected in zip(frames_of(stored), COLOURS, strict=True)
    )


def apng(frames: list[PILImage.Image], **params: object) -> bytes:
    buffer = io.BytesIO()
    frames[0].save(buffer, "PNG", save_all=True, append_images=frames[1:], duration=100, **params)
    return buffer.getvalue()


def rgba_frames(im: PILImage.Image) -> list[list[tuple[int, ...]]]:
    out = []
    for index in range(im.n_frames):
        im.seek(index)
        out.append(list(im.convert("RGBA").get_flattened_data()))
    return out


@pytest.mark.parametrize("disposal", [Disposal.OP_NONE, Disposal.OP_BACKGROUND])
@pytest.mark.parametrize("blend", [Blend.OP_SOURCE, Blend.OP_OVER])
def test_animated_png_frames_are_composited_as_the_file_says(upload, served, disposal, blend):
    # A square moving over a half-transparent background: frames are stored as the rectangles that
    # change, drawn with this disposal and blend. Fully opaque or clear pixels only, which Pillow's own
    # reader composites right (not so OP_PREVIOUS, below): it is the reference here.
    frames = []
    for step in range(4):
        frame = PILImage.new("RGBA", (40, 20), (*BLUE, 255))
        frame.paste((0, 0, 0, 0), (20, 0, 40, 20))
        frame.paste((*RED, 255), (step * 8, 5, step * 8 + 10, 15))
        frames.append(frame)
    raw = apng(frames, disposal=disposal, blend=blend)
    stored = served(upload(raw, filename="moving.png").json()["url"])
    assert stored.n_frames == 4
    assert rgba_frames(stored) == rgba_frames(PILImage.open(io.BytesIO(raw)))


def test_animated_png_frame_disposed_to_previous_leaves_the_canvas_as_it_was(upload, served):
    # A red square shows in frame 2 only: its disposal puts back what was under it before frame 3.
    background = PILImage.new("RGBA", (40, 20), (*BLUE, 255))
    red, green = background.copy(), background.copy()
    red.paste((*RED, 255), (0, 0, 10, 10))
    green.paste((*GREEN, 255), (20, 0, 30, 10))
    disposal = [Disposal.OP_NONE, Disposal.OP_PREVIOUS, Disposal.OP_NONE]
    raw = apng([background, red, green], disposal=disposal, blend=Blend.OP_OVER)
    stored = served(upload(raw, filename="flash.png").json()["url"])
    shown = []
    for index in range(3):
        stored.seek(index)
        shown.append(tuple(stored.convert("RGB").getpixel(xy) for xy in ((5, 5), (25, 5))))
    assert shown == [(BLUE, BLUE), (RED, BLUE), (BLUE, GREEN)]


def test_animated_png_blends_semi_transparent_pixels_over_the_canvas(upload, served):
    # Frame 2 draws half-transparent red over the frame before, which is opaque blue on the left and
    # clear on the right: browsers show purple on the left and half-transparent red on the right.
    first = PILImage.new("RGBA", (40, 20), (0, 0, 0, 0))
    first.paste((*BLUE, 255), (0, 0, 20, 20))
    second = PILImage.new("RGBA", (40, 20), (*RED, 128))
    raw = apng([first, second], blend=[Blend.OP_SOURCE, Blend.OP_OVER])
    for fmt in ("png", "webp"):
        stored = served(upload(raw, filename="glass.png", format=fmt).json()["url"])
        stored.seek(1)
        rgba = stored.convert("RGBA")
        assert close(rgba.getpixel((5, 10)), (128, 0, 127, 255), tolerance=6), (fmt, rgba.getpixel((5, 10)))
        assert close(rgba.getpixel((35, 10)), (255, 0, 0, 128), tolerance=6), (fmt, rgba.getpixel((35, 10)))


def test_animated_gif_stored_as_png_stays_animated(upload, served):
    body = upload(animation("GIF", duration=70, loop=0), filename="a.gif", format="png").json()
    stored = served(body["url"])
    assert (stored.format, stored.n_frames, stored.info["loop"]) == ("PNG", 3, 0)
    assert [d for d, _, _ in frames_of(stored)] == [70, 70, 70]


@pytest.mark.parametrize("fmt", ["webp", "png"])
@pytest.mark.parametrize(
    ("repeats", "plays"),
    [(None, 1), (0, 0), (2, 3)],
    ids=["plays-once", "forever", "three-times"],
)
def test_gif_stored_in_another_format_plays_as_often(upload, served, fmt, repeats, plays):
    # A GIF counts repeats after the first play (none: it plays once); WebP and APNG count plays.
    params = {} if repeats is None else {"loop": repeats}
    body = upload(animation("GIF", duration=50, **params), filename="a.gif", format=fmt).json()
    stored = served(body["url"])
    assert (stored.n_frames, stored.info["loop"]) == (3, plays)


def test_an_opaque_animated_webp_stored_as_avif_has_no_alpha(upload, served):
    stored = served(upload(animation("WEBP"), filename="a.webp", format="avif").json()["url"])
    assert (stored.format, stored.mode) == ("AVIF", "RGB")


def test_animated_avif_becomes_an_animated_webp(upload, served):
    raw = animation("AVIF", duration=[100, 200, 300])
    body = upload(raw, filename="clip.avif", width=100).json()
    assert (body["format"], body["width"], body["height"]) == ("webp", 100, 50)
    stored = served(body["url"])
    assert (stored.format, stored.n_frames, stored.info["loop"]) == ("WEBP", 3, 0)
    frames = frames_of(stored)
    assert [d for d, _, _ in frames] == [100, 200, 300]
    assert all(close(colour, expected) for (_, colour, _), expected in zip(frames, COLOURS, strict=True))


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_a_tiff_of_several_pages_is_stored_as_its_first_page(upload, served, fmt):
    pages = [quadrants((200, 100)), PILImage.new("RGB", (50, 300), GREEN)]
    buffer = io.BytesIO()
    pages[0].save(buffer, "TIFF", save_all=True, append_images=pages[1:])
    body = upload(buffer.getvalue(), filename="scan.tiff", format=fmt).json()
    stored = served(body["url"])
    assert (body["width"], body["height"], getattr(stored, "n_frames", 1)) == (200, 100, 1)
    assert close(corners(stored)[0], RED)


def test_animated_gif_stored_as_jpeg_keeps_its_first_frame(upload, served):
    body = upload(animation("GIF", duration=70), filename="a.gif", format="jpeg").json()
    stored = served(body["url"])
    assert stored.format == "JPEG"
    assert close(corners(stored)[0], RED)


def test_transparent_animation_keeps_transparency_in_every_frame(upload, served):
    frames = []
    for colour in COLOURS:
        frame = PILImage.new("RGBA", (100, 100), (*colour, 255))
        frame.paste((0, 0, 0, 0), (0, 0, 50, 100))
        frames.append(frame)
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100, disposal=2)
    stored = served(upload(buffer.getvalue(), filename="t.gif", width=50).json()["url"])
    for index in range(stored.n_frames):
        stored.seek(index)
        rgba = stored.convert("RGBA")
        assert rgba.getpixel((5, 25))[3] == 0
        assert close(rgba.getpixel((45, 25)), (*COLOURS[index], 255))


def sticker(fmt: str) -> bytes:
    """Two frames: red on the left half, then green on the right half, transparent elsewhere.

    As WebP, libwebp crops the frames to their opaque halves and labels the file opaque, though the
    canvas around them is transparent.
    """
    frames = []
    for colour, box in ((RED, (0, 0, 50, 50)), (GREEN, (50, 0, 100, 50))):
        frame = PILImage.new("RGBA", (100, 50), (0, 0, 0, 0))
        frame.paste((*colour, 255), box)
        frames.append(frame)
    params = {"disposal": 2} if fmt == "GIF" else {}
    buffer = io.BytesIO()
    frames[0].save(buffer, fmt, save_all=True, append_images=frames[1:], duration=100, loop=0, **params)
    return buffer.getvalue()


@pytest.mark.parametrize("source", ["WEBP", "PNG", "GIF"])
@pytest.mark.parametrize("fmt", ["webp", "png"])
def test_transparent_animation_stays_transparent_where_each_frame_is(upload, served, source, fmt):
    body = upload(sticker(source), filename=f"sticker.{source.lower()}", format=fmt).json()
    stored = served(body["url"])
    assert (stored.format, stored.mode, stored.n_frames) == (fmt.upper(), "RGBA", 2)
    for index, (filled, clear, colour) in enumerate((((25, 25), (75, 25), RED), ((75, 25), (25, 25), GREEN))):
        stored.seek(index)
        rgba = stored.convert("RGBA")
        assert rgba.getpixel(clear)[3] == 0, (index, rgba.getpixel(clear))
        assert close(rgba.getpixel(filled), (*colour, 255)), (index, rgba.getpixel(filled))


def test_too_many_frames_get_413_before_decoding(upload, media_root, monkeypatch):
    raw = animation("GIF", frames=1000, size=(8, 8), duration=10)

    def refuse_to_decode(self, *args, **kwargs):
        raise AssertionError("a 1000-frame GIF reached the decoder")

    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", refuse_to_decode)
    assert_problem(upload(raw, filename="many.gif"), 413, field="image", code="image_too_large")
    assert_nothing_stored()


@pytest.mark.parametrize("fmt", ["PNG", "GIF", "WEBP"])
def test_a_still_image_is_not_held_to_the_animation_budget(upload, settings, fmt):
    settings.IMAGE_MAX_ANIMATION_PIXELS = 100
    assert upload(quadrants((200, 100)), fmt=fmt, filename=f"still.{fmt.lower()}").status_code == 201


def test_frame_limit_is_a_setting(upload, settings):
    settings.IMAGE_MAX_FRAMES = 2
    assert_problem(upload(animation("GIF", frames=3), filename="a.gif"), 413)
    assert upload(animation("GIF", frames=2), filename="a.gif").status_code == 201


def test_animation_pixel_budget_counts_every_frame(upload, media_root, settings):
    settings.IMAGE_MAX_ANIMATION_PIXELS = 200 * 100 * 2
    assert_problem(upload(animation("WEBP", frames=3), filename="a.webp"), 413)
    assert upload(animation("WEBP", frames=2), filename="a.webp").status_code == 201


# --- The `format` field ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "avif"])
def test_format_field_chooses_the_stored_format(upload, served, fmt):
    body = upload(quadrants((200, 100)), filename="q.png", format=fmt, width=100).json()
    assert body["format"] == fmt
    stored = served(body["url"])
    assert stored.format == fmt.upper()
    assert stored.served_headers["Content-Type"] == f"image/{fmt}"
    assert body["url"].endswith(".jpg" if fmt == "jpeg" else f".{fmt}")
    tl, tr, bl, br = corners(stored)
    assert all(close(a, b, 60) for a, b in [(tl, RED), (tr, GREEN), (bl, BLUE), (br, WHITE)])


@pytest.mark.parametrize("fmt", ["gif", "bmp", "tiff", "JPEG!", "svg"])
def test_format_field_rejects_other_values(upload, media_root, fmt):
    assert_problem(upload(quadrants(), format=fmt), 400, field="format")
    assert stored_names() == []


def test_transparency_stored_as_jpeg_is_flattened_onto_white(upload, served):
    im = PILImage.new("RGBA", (100, 100), (0, 0, 0, 0))
    im.paste((255, 0, 0, 255), (50, 0, 100, 100))
    stored = served(upload(im, format="jpeg").json()["url"])
    assert stored.mode == "RGB"
    assert close(stored.getpixel((10, 50)), WHITE)
    assert close(stored.getpixel((90, 50)), RED)


def test_transparency_stored_as_webp_and_avif_is_kept(upload, served):
    im = PILImage.new("RGBA", (64, 64), (0, 0, 255, 255))
    im.paste((0, 0, 0, 0), (0, 0, 32, 64))
    for fmt in ("webp", "avif"):
        stored = served(upload(im, format=fmt).json()["url"]).convert("RGBA")
        assert stored.getpixel((8, 32))[3] < 10, fmt
        assert stored.getpixel((56, 32))[3] > 245, fmt


# --- Output is optimized ------------------------------------------------------------------------


def photo_like(size: tuple[int, int]) -> PILImage.Image:
    base = PILImage.effect_mandelbrot(size, (-2.0, -1.2, 0.8, 1.2), 64)
    noise = PILImage.effect_noise(size, 24)
    return PILImage.merge("RGB", (base, PILImage.blend(base, noise, 0.3), noise))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF"])
@pytest.mark.parametrize("size", [(1, 1), (16, 16), (300, 200), (1200, 800)])
def test_stored_file_is_never_larger_than_a_plain_save_of_its_pixels(upload, served, settings, fmt, size):
    # A lossless source stored without resizing: the stored pixels are exactly the source's, so a
    # plain Pillow save of the source at the same quality is the fair comparison.
    pixels = photo_like(size)
    target = fmt.lower() if fmt in ("JPEG", "PNG", "WEBP") else None
    filename = "p.gif" if fmt == "GIF" else "p.png"
    source = encode(pixels, "GIF") if fmt == "GIF" else encode(pixels, "PNG")
    body = upload(source, filename=filename, format=target).json()
    stored = served(body["url"])
    assert stored.format == fmt
    reference = PILImage.open(io.BytesIO(source)).convert("RGB") if fmt == "GIF" else pixels
    quality = {"JPEG": settings.IMAGE_JPEG_QUALITY, "WEBP": settings.IMAGE_WEBP_QUALITY}.get(fmt)
    plain = encode(reference, fmt, **({"quality": quality} if quality else {}))
    assert len(stored.served_bytes) <= len(plain)


def test_stored_jpeg_is_baseline_and_subsampled_and_its_renditions_progressive(api, upload, served):
    # The stored file is decoded again for every rendition: baseline, which scales in the DCT domain
    # cheaply. A rendition is only read by browsers: progressive, which they show early.
    body = upload(photo_like((1200, 800)), format="jpeg").json()
    stored = served(body["url"])
    assert not (stored.info.get("progressive") or stored.info.get("progression"))
    assert stored.layer[0][1:3] == (2, 2)  # luma sampled 2x2 against chroma: 4:2:0
    response = api.get(f"/images/{body['id']}/file?width=640&format=jpeg")
    assert response.status_code == 200
    rendition = PILImage.open(
        io.BytesIO(b"".join(response.streaming_content) if response.streaming else response.content)
    )
    assert rendition.size == (640, 427)
    assert rendition.info.get("progressive") or rendition.info.get("progression")
    assert rendition.layer[0][1:3] == (2, 2)
