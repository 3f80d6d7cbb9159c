// How the pictures of a node's image inputs are numbered: the same rule as api/request/pictures.py number_pictures
// (tests/api/test_picture_numbering.py runs both on the same cases). Pictures are numbered in the order they
// are sent: every picture of `image`'s batch, then `image_2`'s, ...; an input with nothing connected sends
// nothing and takes no number. No imports, so node and the browser both load it.

// inputs: [[input name, pictures in its batch, or null when nothing is connected], ...]
// -> [{picture: 1-based number, input, index: position in the batch, label: "image" or "image[1]"}, ...]
export function numberPictures(inputs) {
  const out = [];
  for (const [name, count] of inputs) {
    if (count === null || count === undefined) continue;
    if (count < 1) throw new Error(`${name} is an empty batch (0 pictures)`);
    for (let index = 0; index < count; index++) {
      out.push({ picture: out.length + 1, input: name, index, label: count === 1 ? name : `${name}[${index}]` });
    }
  }
  return out;
}
