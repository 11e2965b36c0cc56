"""The organizer's services: competition settings and announcements, new competitions."""
