"""Panel views of the engine: one Viewer per section and the page that composes them.

Only this package imports Panel, HoloViews and Bokeh.
"""
