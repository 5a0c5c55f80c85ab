"""imgfeat: image embeddings computed locally, with any timm backbone, the packaged offline
weights, RADAM and the other poolings, and the user's own ``ae:`` and ``flim:`` models."""

NAME = "imgfeat"
DESCRIPTION = "Image embeddings computed on this machine by imgfeat."
ICON = "icons/imgfeat.svg"
BACKGROUND = "#C9E4F5"
PRIORITY = 1010
